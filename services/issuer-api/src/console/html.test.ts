import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { html, raw } from './html.js';

describe('console html templates', () => {
  it('escape every interpolated value, in text and attributes', () => {
    const name = `<script>alert("x")</script>' onmouseover='y`;
    const out = html`<p title="${name}">${name}</p>`.value;
    assert.equal(out, '<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y</p>');
  });

  it('keep nested templates and raw constants as markup, lists joined, empty values dropped', () => {
    const rows = ['a&b', 'c'].map((v) => html`<li>${v}</li>`);
    assert.equal(html`<ul>${rows}</ul>${raw('<hr>')}${undefined}${null}${false}${0}`.value, '<ul><li>a&amp;b</li><li>c</li></ul><hr>0');
  });
});
