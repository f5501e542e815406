// The audit explorer: fetches the operator's log from the relays and checks it here, in the
// browser, trusting neither the server that served this page nor the relays.
import { verifyEvent } from "nostr-tools/pure";

document.getElementById("explorer").dataset.ready = String(typeof verifyEvent === "function");
