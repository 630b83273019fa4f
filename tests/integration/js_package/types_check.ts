// Type-checked (tsc --noEmit, strict) inside the scratch project: the package's
// declarations, found through its exports map, describe what an app writes.
import { DEFAULT_ENDPOINTS, TidingsClient, loadSocketIo } from "tidings-client";
import type { Snapshot, Status, TidingsEvent } from "tidings-client";
import { SyncController, type ControllerAction } from "tidings-client/sync-controller";

interface Todo extends Snapshot {
  items: string[];
}

const client = new TidingsClient({
  projects: [7],
  transport: "socketio",
  endpoints: { events: "/todo/lists/{project}/changes", poll: null },
  applyEvent: (snapshot: Snapshot, event: TidingsEvent) => {
    snapshot.version = event.version;
  },
  controller: { poke_delay: 0.05 },
});
client.addEventListener("apply", (e) => {
  const versions: number[] = e.detail.events.map((event) => event.version);
  const held: Snapshot | null = e.detail.snapshot;
  void versions, held;
});
client.addEventListener("status", (e) => {
  const status: Status = e.detail.status;
  void status;
});
const todo = client.snapshot(7) as Todo | null;
const path: string = DEFAULT_ENDPOINTS.events;
const io: Promise<unknown> = loadSocketIo();
void todo, path, io;

const controller = new SyncController({ projects: [7], versions: { "7": 3 } }, Math.random);
const actions: ControllerAction[] = controller.feed(Date.now() / 1000, { type: "start" });
const next: number | null = controller.nextDeadline();
void actions, next;

// @ts-expect-error: "websocket" is not a transport
new TidingsClient({ projects: [7], transport: "websocket" });
// @ts-expect-error: projects are required
new TidingsClient({});
