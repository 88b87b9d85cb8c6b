// Marks the page done once every tile has loaded, so a browser test can wait on the DOM.
window.addEventListener("load", () => {
  const tiles = [...document.querySelectorAll("#tiles img")];
  const loaded = tiles.filter((img) => img.complete && img.naturalWidth > 0).length;
  const status = document.getElementById("status");
  status.textContent = `${loaded} of ${tiles.length} tiles loaded through the stream`;
  if (loaded === tiles.length) status.className = "done";
});
