#!/usr/bin/env node
/** `devicestream` as the client package installs it (docs/cli.md): no checkout, no `dev` commands. */
import { main } from "../cli/main";

main();
