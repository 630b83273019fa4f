// Runs scenarios (scenario.mjs) in headless Chromium through playwright-core, one
// page each, against page.html served by the harness; prints one JSON array.
//
//   node browser.mjs <url> '[["upgrade","auth",150], ...]'
import { chromium } from "playwright-core";

const [url, specs] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  chromiumSandbox: false,
  args: [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  timeout: 20000,
});
try {
  const results = await Promise.all(
    JSON.parse(specs).map(async ([mode, how, project]) => {
      const page = await browser.newPage();
      const errors = [];
      page.on("pageerror", (err) => errors.push(String(err)));
      await page.goto(`${url}/?mode=${mode}&how=${how}&project=${project}`, { timeout: 10000 });
      await page.waitForFunction(() => window.exitCode !== undefined, null, { timeout: 15000 });
      const code = await page.evaluate(() => window.exitCode);
      const lines = await page.evaluate(() => window.lines);
      return { mode, how, code, lines, errors };
    }),
  );
  console.log(JSON.stringify(results));
} finally {
  await browser.close();
}
