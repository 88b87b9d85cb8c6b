#!/usr/bin/env node
/** `devicestream` as the checkout runs it: the client's CLI (docs/cli.md) plus the local stack's `dev` commands. */
import { checkoutConfigPath } from "../client/cli/config";
import { main } from "../client/cli/main";
import { registerDevCommands } from "../devstack/devCommands";

// Node runs the entry point from its real path: the checkout is the one holding this dist/.
main({ checkoutConfig: checkoutConfigPath(__dirname), extensions: [registerDevCommands] });
