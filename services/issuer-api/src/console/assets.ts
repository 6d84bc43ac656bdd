/**
 * The console's stylesheet and its one script, served from /console/assets/ (the CSP allows scripts and
 * styles from 'self' only: no inline code). Kept as strings in the source so the built service and
 * the source run serve the same files without a copy step.
 */
export const CONSOLE_CSS = `
:root { --ink: #1b1f24; --muted: #4a525c; --line: #c9ced6; --bg: #ffffff; --band: #f3f5f8; --accent: #0b5cad; --ok: #0f6b2f; --bad: #a4111a; --warn: #7a4b00; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--bg); }
a { color: var(--accent); }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #ffbf47; outline-offset: 1px; }
header { display: flex; align-items: center; gap: 1.5rem; padding: .6rem 1.2rem; background: #14213d; color: #fff; flex-wrap: wrap; }
header a { color: #fff; text-decoration: none; padding: .2rem .1rem; }
header a[aria-current="page"] { border-bottom: 3px solid #ffbf47; }
header .brand { font-weight: 700; margin-right: 1rem; }
header nav ul { display: flex; gap: 1.1rem; list-style: none; margin: 0; padding: 0; flex-wrap: wrap; }
header .who { margin-left: auto; display: flex; gap: .8rem; align-items: center; }
header .who button { background: transparent; color: #fff; border: 1px solid #fff; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.6rem; margin: .6rem 0 1rem; }
h2 { font-size: 1.2rem; margin: 1.6rem 0 .6rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0 1rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .92em; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr)); gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; background: var(--band); }
.card h2 { margin-top: 0; }
.status { display: inline-block; padding: .05rem .5rem; border-radius: 3px; font-weight: 600; border: 1px solid currentColor; }
.status.ok { color: var(--ok); } .status.bad { color: var(--bad); background: #fde8ea; } .status.warn { color: var(--warn); background: #fff4dc; }
.alert { border-left: 6px solid var(--bad); background: #fde8ea; padding: .6rem 1rem; margin: .6rem 0 1rem; }
.notice { border-left: 6px solid var(--ok); background: #e6f4ea; padding: .6rem 1rem; margin: .6rem 0 1rem; }
form.inline { display: inline; }
label { display: block; font-weight: 600; margin: .8rem 0 .3rem; }
input[type=text], input[type=password], input[type=search], select, textarea { font: inherit; padding: .4rem .5rem; border: 1px solid #6b7480; border-radius: 4px; width: 100%; max-width: 40rem; }
textarea { min-height: 8rem; }
button { font: inherit; padding: .4rem .9rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
.hint { color: var(--muted); font-size: .92rem; margin: .2rem 0; }
progress { width: 100%; height: 1.2rem; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; margin: 0; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: .5rem; background: #fff; color: var(--ink); padding: .3rem .6rem; }
`;

/**
 * Live figures: an element with data-live="<url>" has its content replaced every 2 s by that URL's
 * HTML fragment (the console's own, same origin), until the fragment says data-final. Without
 * JavaScript the page is the same, only still: reload for fresh figures.
 */
export const CONSOLE_JS = `
(() => {
  for (const el of document.querySelectorAll('[data-live]')) {
    const url = el.getAttribute('data-live');
    const tick = async () => {
      try {
        const res = await fetch(url, { credentials: 'same-origin', headers: { accept: 'text/html' } });
        if (res.ok) el.innerHTML = await res.text();
      } catch { /* the next tick tries again */ }
      if (!el.querySelector('[data-final]')) setTimeout(tick, 2000);
    };
    setTimeout(tick, 2000);
  }
})();
`;
