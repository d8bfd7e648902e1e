// For tests/test_web_client.py: decodes each line of a cases file ("f HEX": a binary message, "c HEX": a
// client text message) and prints "decoded: ok" or "decoded: CODE [FRAME_ID|None]", to be compared with
// the server's codec on the same bytes. Usage: node decode-cases.js FILE
import { readFileSync } from "node:fs";

import { decodeClientMessage, decodeFrame } from "../src/protocol.js";

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean);
const out = lines.map((line) => {
  const [kind, hex] = line.split(" ");
  const bytes = new Uint8Array(Buffer.from(hex === "-" ? "" : hex, "hex"));
  try {
    if (kind === "f") decodeFrame(bytes);
    else decodeClientMessage(bytes);
    return "decoded: ok";
  } catch (error) {
    if (error.code === undefined) throw error;
    return kind === "f" ? `decoded: ${error.code} ${error.frameId ?? "None"}` : `decoded: ${error.code}`;
  }
});
console.log(out.join("\n"));
