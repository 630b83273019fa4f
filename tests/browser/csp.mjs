// The Content-Security-Policy refuses nothing the pages use: the board goes live over
// each push transport (the push server's origin is in connect-src) and Chromium logs no
// violation on the board or the admin page. On the way: the snapshot arrives gzipped, the
// modules carry revalidation headers (Cache-Control: no-cache), and the board page's inline
// script (allowed by its hash) ran and its early requests were taken.
//
//   node tests/browser/csp.mjs http://localhost:8000

import { boardPage, check, scenario, signIn, waitStatus } from "./lib.mjs";

const VIOLATION = /Content Security Policy/i;

await scenario("csp", async (browser, url, pages) => {
  for (const transport of ["ws", "sse", "socketio"]) {
    const page = await boardPage(browser, url, "ada", { transport });
    pages.push(page);
    if (transport === "ws") {
      // While here: the snapshot came gzipped, the page's modules with revalidation headers.
      const [snapshot, script] = await Promise.all([
        page.waitForResponse((r) => /\/api\/projects\/\d+$/.test(r.url()), { timeout: 10000 }),
        page.waitForResponse((r) => r.url().endsWith("/js/board.js"), { timeout: 10000 }),
        page.reload(),
      ]);
      const packed = (await snapshot.allHeaders())["content-encoding"];
      check(packed === "gzip", `the snapshot was sent with content-encoding ${packed}`);
      const cache = (await script.allHeaders())["cache-control"];
      check(cache === "no-cache", `board.js was sent with cache-control ${cache}`);
      // The page's inline script (allowed by its hash) asked for the snapshot, and board.js took its answer.
      const taken = await page.evaluate(() => window.tidingsEarly === null);
      check(taken, "the inline script's early requests were not made or not taken by board.js");
    }
    await waitStatus(page, "live", 15000, `board over ${transport}`);
    const policy = (await page.request.get(`${url}/`)).headers()["content-security-policy"] || "";
    check(policy.includes("frame-ancestors 'none'"), `the board page has no CSP: "${policy}"`);
  }
  const admin = await (await browser.newContext()).newPage();
  admin.tidingsLog = [];
  admin.on("console", (m) => admin.tidingsLog.push(`[admin console.${m.type()}] ${m.text()}`));
  pages.push(admin);
  await signIn(admin, url, "ada", "/admin.html");
  await admin.getByTestId("flags").waitFor({ timeout: 15000 });
  await admin.waitForLoadState("networkidle");
  const violations = pages.flatMap((p) => p.tidingsLog.filter((line) => VIOLATION.test(line)));
  check(violations.length === 0, `CSP violations:\n${violations.join("\n")}`);
});
