// One socket.io-client scenario, shared by the Node runner (client.mjs) and the
// browser page (page.html): connect, subscribe, receive pokes, refresh, leave.
//
//   mode: upgrade (polling then websocket) | websocket | polling
//   how: auth (token in the CONNECT auth payload) | event (a subscribe event) |
//        kick (the harness disconnects the client after the first poke) |
//        badauth (a malformed auth payload) | badns (a namespace other than /)
// log(obj) records one observation; finish(code) ends the run (0: as expected).
export function run(io, { url, mode, how, project, log, finish }) {
  const transports = {
    upgrade: ["polling", "websocket"],
    websocket: ["websocket"],
    polling: ["polling"],
  }[mode];
  const deadline = setTimeout(() => {
    log({ error: "timeout" });
    finish(2);
  }, 8000);
  const end = (code) => {
    clearTimeout(deadline);
    finish(code);
  };

  const token = how === "kick" ? "kick-me" : "token-1";
  const subscription = { token, projects: { [project]: 1 } };
  const options = { transports, reconnection: false, timeout: 5000 };
  if (how === "auth" || how === "kick") options.auth = subscription;
  if (how === "badauth") options.auth = { token, projects: { [project]: -1 } };
  const socket = io(how === "badns" ? `${url}/admin` : url, options);

  let pings = 0;
  socket.io.on("open", () => {
    const engine = socket.io.engine;
    engine.on("ping", () => (pings += 1));
    engine.on("upgrade", (transport) => log({ upgrade: transport.name }));
  });

  socket.on("connect", () => {
    log({ connect: typeof socket.id, transport: socket.io.engine.transport.name });
    if (how === "event") {
      socket.emit("subscribe", subscription, (...args) => log({ ack: "subscribe", args }));
    }
  });
  socket.on("connect_error", (err) => {
    log({ connect_error: err.message });
    end(how === "badns" || how === "badauth" ? 0 : 3);
  });
  socket.on("subscribed", (message) => log({ subscribed: message }));
  socket.on("error", (message) => log({ error_event: message }));
  socket.on("disconnect", (reason) => {
    log({ disconnect: reason, pings });
    if (how === "kick") end(0);
  });

  const pokes = [];
  socket.on("poke", (message) => {
    pokes.push(message);
    log({ poke: message, transport: socket.io.engine.transport.name });
    if (how === "kick") {
      // The harness disconnects this client right after the poke.
    } else if (pokes.length === 1) {
      // Stay through at least two server pings (waiting on them, not on a fixed
      // time: a busy machine may ping late), then refresh the token on the same
      // session. The run's deadline bounds the wait.
      const refreshAfterPings = () => {
        if (pings < 2) {
          setTimeout(refreshAfterPings, 100);
          return;
        }
        const refresh = { token: "token-2", projects: { [project]: message.version } };
        socket.emit("refresh", refresh, () => log({ ack: "refresh" }));
      };
      setTimeout(refreshAfterPings, 500);
    } else if (pokes.length === 2) {
      const transport = socket.io.engine.transport.name;
      log({ done: true, pings, connected: socket.connected, transport });
      socket.disconnect();
      end(0);
    }
  });
}
