// Marks the page done once every tile has loaded, so a browser test can wait on the DOM.
window.addEventListener("load", () => {
  const tiles = [...document.querySelectorAll("#tiles img")];
  const loaded = tiles.filter((img) => img.complete && img.naturalWidth > 0).length;
  const status = document.getElementById("status");
  status.textContent = `${loaded} of ${tiles.length} tiles loaded through the stream`;
  if (loaded === tiles.length) status.className = "done";
});

// One WebSocket to the device's echo, on this page's own origin; marked done when a message comes back.
(() => {
  const out = document.getElementById("websocket");
  const sent = `ping ${Date.now()}`;
  const started = performance.now();
  const url = new URL("/echo", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url);
  socket.addEventListener("open", () => socket.send(sent));
  socket.addEventListener("message", (event) => {
    const ms = (performance.now() - started).toFixed(0);
    const ok = event.data === sent;
    out.textContent = ok ? `WebSocket echo: round trip in ${ms} ms` : "WebSocket echo: wrong answer";
    if (ok) out.className = "done";
    socket.close();
  });
  socket.addEventListener("error", () => {
    out.textContent = "WebSocket echo: failed";
  });
})();
