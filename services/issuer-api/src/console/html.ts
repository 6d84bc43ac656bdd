/**
 * Server-rendered HTML with escaping by default: every value put into an `html` template is escaped
 * unless it is itself the result of `html` (or `raw`, for the few constants that are markup).
 * Written by hand, not @kitajs/html or a view engine: those escape only where told (a forgotten `safe`
 * is an XSS), need a JSX build step, or bring a template language; this is 40 lines and fails safe.
 */
export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

function render(part: Part): string {
  if (part instanceof Html) return part.value;
  if (part === null || part === undefined || part === false) return '';
  if (Array.isArray(part)) return part.map(render).join('');
  return escapeHtml(String(part));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]) + strings[i + 1]!;
  return new Html(out);
}

/** Markup from a constant of ours (never from input). */
export function raw(markup: string): Html {
  return new Html(markup);
}
