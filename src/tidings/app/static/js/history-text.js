// Events told as sentences for people: "Ada moved 'Fix login' to Started". Pure (no DOM),
// so tests/js/history-text.test.mjs checks every event type. Names and titles come from a
// context the caller gives (the board's model), since events carry ids, not names.

const FIELD_NAMES = { title: "title", story_type: "type", state: "state", estimate: "points", owner_id: "owner", labels: "labels", description: "description" };
/** Longest stretch of user text quoted in a sentence; the rest is cut with "…". */
export const QUOTE_MAX = 80;

const capital = (s) => (s ? s[0].toUpperCase() + s.slice(1) : s);

/** User text in quotes, cut to QUOTE_MAX characters and kept on one line. */
export function quote(text) {
  const flat = String(text).replace(/\s+/g, " ").trim();
  const cut = flat.length > QUOTE_MAX ? `${flat.slice(0, QUOTE_MAX - 1)}…` : flat;
  return `'${cut}'`;
}

/** The story an event is about (`data.story_id`, or the created story's id), or null. */
export function storyOf(event) {
  const d = event.data || {};
  if (d.story_id !== undefined && d.story_id !== null) return d.story_id;
  if (d.story && d.story.id !== undefined) return d.story.id;
  return null;
}

/**
 * ctx: {person(userId) -> name, story(storyId) -> title or null, task(storyId, taskId) ->
 * text or null, here: the story the sentence is shown under (it is "this story"), or null}.
 */
export function sentence(event, ctx) {
  const who = ctx.person(event.actor);
  const d = event.data || {};
  const sid = storyOf(event);
  const here = ctx.here !== undefined && ctx.here !== null && sid === ctx.here;
  const title = sid === null ? null : ctx.story(sid) ?? (d.story && d.story.title) ?? (d.changes && d.changes.title) ?? null;
  const it = here ? "this story" : title !== null ? quote(title) : `story #${sid}`;
  const task = () => {
    const text = ctx.task ? ctx.task(sid, d.task_id) : null;
    return text ? `the task ${quote(text)}` : "a task";
  };
  switch (event.type) {
    case "project_created":
      return `${who} created the project ${quote(d.name)}`;
    case "project_renamed":
      return `${who} renamed the project to ${quote(d.name)}`;
    case "member_added":
      return `${who} made ${d.user_id === event.actor ? "themselves" : d.name} ${d.role === "owner" ? "an owner" : `a ${d.role}`}`;
    case "member_removed":
      return `${who} removed ${ctx.person(d.user_id)} from the project`;
    case "story_created":
      return `${who} created ${it} in ${capital(d.story.state)}`;
    case "story_updated":
      return `${who} ${changed(it, d.changes || {}, ctx)}`;
    case "story_moved":
      return d.state ? `${who} moved ${it} to ${capital(d.state)}` : `${who} reprioritized ${it}`;
    case "story_deleted":
      return `${who} deleted ${it}`;
    case "comment_added":
      return `${who} commented on ${it}: ${quote(d.comment.text)}`;
    case "comment_edited":
      return `${who} edited a comment on ${it}`;
    case "comment_deleted":
      return `${who} deleted a comment on ${it}`;
    case "task_added":
      return `${who} added the task ${quote(d.task.text)} to ${it}`;
    case "task_edited":
      return `${who} changed a task on ${it} to ${quote(d.text)}`;
    case "task_completed":
      return `${who} ${d.done ? "completed" : "reopened"} ${task()} on ${it}`;
    case "task_reordered":
      return `${who} reordered the tasks of ${it}`;
    case "task_deleted":
      return `${who} deleted a task from ${it}`;
    default:
      return `${who} changed the project (${event.type})`;
  }
}

/** "moved 'X' to Started", or "changed 'X': points to 3, owner to Grace". */
function changed(it, changes, ctx) {
  const fields = Object.keys(changes);
  if (fields.length === 1 && fields[0] === "state") return `moved ${it} to ${capital(changes.state)}`;
  if (fields.length === 1 && fields[0] === "title") return `renamed ${it} to ${quote(changes.title)}`;
  const parts = fields.map((f) => {
    const v = changes[f];
    const name = FIELD_NAMES[f] || f;
    if (f === "description") return v ? "the description" : "description cleared";
    if (v === null || v === undefined || (Array.isArray(v) && v.length === 0)) return `${name} cleared`;
    if (f === "owner_id") return `owner to ${ctx.person(v)}`;
    if (f === "labels") return `labels to ${v.join(", ")}`;
    if (f === "title") return `title to ${quote(v)}`;
    if (f === "story_type" || f === "state") return `${name} to ${capital(v)}`;
    return `${name} to ${v}`;
  });
  return `changed ${it}: ${parts.join(", ")}`;
}

/** "just now", "5 min ago", "3 h ago", "2 d ago"; older than a week: the date. `now` in seconds. */
export function relativeTime(ts, now) {
  const s = Math.max(0, now - ts);
  if (s < 45) return "just now";
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 7 * 86400) return `${Math.floor(s / 86400)} d ago`;
  return new Date(ts * 1000).toISOString().slice(0, 10);
}
