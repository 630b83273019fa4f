// What the app's refusals mean, in words for the person at the board. The app names
// fields by their path in the request ("command.update_story.description") and limits in
// pydantic's words; the board says which field and what the limit is.

/** The limits the app enforces (src/tidings/domain/commands.py, settings.max_body_bytes). */
export const LIMITS = Object.freeze({
  title: 200,
  description: 20000,
  label: 50,
  labels: 20,
  task: 500,
  comment: 10000,
  projectName: 200,
  email: 254,
});

const FIELD_NAMES = {
  title: "The title",
  description: "The description",
  labels: "Labels",
  text: "The text",
  estimate: "Points",
  owner_id: "The owner",
  story_type: "The type",
  state: "The state",
  name: "The name",
  email: "The email",
};

const number = (n) => Number(n).toLocaleString("en-US");

/** The field a 422 names: the last part of its path that is not an index. */
function fieldOf(loc) {
  const parts = String(loc || "").split(".").filter((p) => !/^\d+$/.test(p));
  return parts[parts.length - 1] || "";
}

function fieldProblem(field, msg) {
  const name = FIELD_NAMES[field] || (field ? field.replace(/_/g, " ") : "A field");
  let m = /at most (\d+) characters?/.exec(msg);
  if (m) return field === "labels" ? `A label can be at most ${number(m[1])} characters.` : `${name} is too long: at most ${number(m[1])} characters.`;
  m = /at most (\d+) items?/.exec(msg);
  if (m) return `${name}: at most ${number(m[1])}.`;
  if (/at least 1 character/.test(msg)) return `${name} cannot be empty.`;
  return `${name}: ${msg.charAt(0).toLowerCase()}${msg.slice(1)}.`;
}

/** One sentence for an ApiError's refusal (422, 413 and the rest), without internal paths. */
export function humanError(err) {
  const status = err && err.status;
  if (status === 413) {
    const m = /over (\d+) bytes/.exec(err.message || "");
    const size = m ? ` (at most ${Math.round(Number(m[1]) / 1024)} KB)` : "";
    return `Too large to save${size}. Shorten the description or split the story.`;
  }
  if (status === 422) {
    const fields = (err.body && err.body.fields) || [];
    if (fields.length > 0) return fields.map((f) => fieldProblem(fieldOf(f.loc), String(f.msg || ""))).join(" ");
    const detail = String(err.message || "the app refused the change");
    return `${detail.charAt(0).toUpperCase()}${detail.slice(1)}.`.replace(/\.\.$/, ".");
  }
  return `The app answered with an error (HTTP ${status}). Try again.`;
}

/** A 403's reason as a sentence ("only owners may rename project" -> "Only owners may rename project."). */
export function refusal(err) {
  const detail = String((err && err.message) || "you may not do that");
  return `${detail.charAt(0).toUpperCase()}${detail.slice(1)}.`.replace(/\.\.$/, ".");
}

/** Problems the board can see before sending a story's fields: [field, message] or null. */
export function storyProblem(values) {
  if (values.title === "") return ["title", "A story needs a title."];
  if (values.labels.length > LIMITS.labels) return ["labels", `At most ${LIMITS.labels} labels.`];
  const long = values.labels.find((l) => l.length > LIMITS.label);
  if (long) return ["labels", `A label can be at most ${LIMITS.label} characters ("${long.slice(0, 20)}…").`];
  return null;
}
