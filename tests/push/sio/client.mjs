// Runs one scenario (scenario.mjs) with the official socket.io-client in Node and
// prints one JSON object per line for the pytest side to check.
//
//   node client.mjs <url> <mode> <how> <project>
import { io } from "socket.io-client";
import { run } from "./scenario.mjs";

const [url, mode, how, project] = process.argv.slice(2);
run(io, {
  url,
  mode,
  how,
  project,
  log: (obj) => console.log(JSON.stringify(obj)),
  finish: (code) => setTimeout(() => process.exit(code), 300),
});
