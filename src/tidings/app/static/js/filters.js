// Which stories the board shows: a filter by text (title and description), label, owner,
// type and state, combined with "and". Pure (no DOM): tests/js/filters.test.mjs checks it.
// A filter lives in the address after the project, `#/projects/7?q=login&type=bug`, so a
// reload or a shared link keeps it.

/** The filter's keys, in the order they appear in the address. */
export const KEYS = ["q", "type", "state", "owner", "label"];
/** Longest text filter kept (a longer one in an address is cut). */
export const TEXT_MAX = 200;

export const NO_FILTER = Object.freeze({ q: "", type: "", state: "", owner: "", label: "" });

/** The filter in an address's query part ("q=login&type=bug", with or without "?"). */
export function parseFilter(query) {
  const params = new URLSearchParams(String(query || "").replace(/^\?/, ""));
  const f = { ...NO_FILTER };
  for (const key of KEYS) f[key] = (params.get(key) || "").slice(0, key === "q" ? TEXT_MAX : 100);
  if (f.owner !== "" && f.owner !== "none" && !/^[1-9][0-9]{0,15}$/.test(f.owner)) f.owner = "";
  return f;
}

/** The query part for `f` ("" when it filters nothing); empty keys are left out. */
export function filterQuery(f) {
  const params = new URLSearchParams();
  for (const key of KEYS) if (f[key]) params.set(key, f[key]);
  return params.toString();
}

export function isActive(f) {
  return KEYS.some((key) => Boolean(f[key]));
}

/** The words of a text filter, lower-cased: a story matches when it holds every one. */
function words(text) {
  return text.toLowerCase().split(/\s+/).filter(Boolean);
}

/** A predicate for stories, or null when `f` filters nothing (every story shows). */
export function matcher(f) {
  if (!isActive(f)) return null;
  const terms = words(f.q);
  const owner = f.owner === "" ? undefined : f.owner === "none" ? null : Number(f.owner);
  return (story) => {
    if (f.type && story.story_type !== f.type) return false;
    if (f.state && story.state !== f.state) return false;
    if (owner !== undefined && (story.owner_id ?? null) !== owner) return false;
    if (f.label && !story.labels.includes(f.label)) return false;
    if (terms.length) {
      const hay = `${story.title}\n${story.description || ""}`.toLowerCase();
      for (const term of terms) if (!hay.includes(term)) return false;
    }
    return true;
  };
}

/** Every label in use, sorted: the choices of the label filter. */
export function labelsIn(stories) {
  const seen = new Set();
  for (const s of stories) for (const label of s.labels) seen.add(label);
  return [...seen].sort((a, b) => a.localeCompare(b));
}

/** The address for project `id` with filter `f`. */
export function hashFor(id, f) {
  const query = filterQuery(f);
  return `#/projects/${id}${query ? `?${query}` : ""}`;
}

/** The filter part of an address like "#/projects/7?q=x" (NO_FILTER when it has none). */
export function filterFromHash(hash) {
  const at = hash.indexOf("?");
  return at < 0 ? { ...NO_FILTER } : parseFilter(hash.slice(at + 1));
}
