/**
 * Figures: a Vega-Lite spec compiled and rendered headlessly by Vega to SVG,
 * then rasterised to PNG by resvg (a Rust renderer shipped prebuilt in its
 * npm package). Text is set in DejaVu Sans (Debian's fonts-dejavu-core) in
 * both, so the SVG and the PNG look alike.
 */
import { writeFileSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { type TopLevelSpec, compile } from 'vega-lite';

export const FONT = 'DejaVu Sans';

export const BASE_CONFIG = {
  font: FONT,
  background: 'white',
  padding: 12,
  title: { fontSize: 16, anchor: 'start', subtitleFontSize: 12, subtitleColor: '#444' },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', grid: true, gridColor: '#e8e8e8' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' },
  view: { stroke: '#bbb' },
} as const;

/**
 * SVG text of a Vega-Lite spec. Without a canvas Vega estimates text widths
 * on the generous side, which leaves blank margins; the picture is trimmed to
 * what is really drawn (resvg measures it with the real font), plus padding.
 */
export async function toSvg(spec: TopLevelSpec, pad = 12): Promise<string> {
  const view = new vega.View(vega.parse(compile({ ...spec, config: { ...spec.config, background: null } } as unknown as TopLevelSpec).spec), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  const box = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: FONT } }).getBBox();
  const head = /^<svg([^>]*)>/.exec(svg);
  if (!box || !head) return svg;
  const x = Math.floor(box.x - pad);
  const y = Math.floor(box.y - pad);
  const w = Math.ceil(box.width + 2 * pad);
  const h = Math.ceil(box.height + 2 * pad);
  const attrs = head[1]!.replace(/\s(width|height|viewBox)="[^"]*"/g, '');
  return `<svg${attrs} width="${w}" height="${h}" viewBox="${x} ${y} ${w} ${h}"><rect x="${x}" y="${y}" width="${w}" height="${h}" fill="white"/>${svg.slice(head[0].length)}`;
}

/** PNG of an SVG at `scale` (2 = twice the SVG's pixel size). */
export function svgToPng(svg: string, scale = 2): Buffer {
  const r = new Resvg(svg, { fitTo: { mode: 'zoom', value: scale }, background: 'white', font: { loadSystemFonts: true, defaultFontFamily: FONT } });
  return Buffer.from(r.render().asPng());
}

/** Writes `base`.svg and `base`.png; returns their paths. */
export async function writeFigure(spec: TopLevelSpec, base: string): Promise<{ svg: string; png: string }> {
  const svg = await toSvg(spec);
  writeFileSync(`${base}.svg`, svg);
  writeFileSync(`${base}.png`, svgToPng(svg));
  return { svg: `${base}.svg`, png: `${base}.png` };
}

/** A CSV field: quoted when it must be. */
function field(v: unknown): string {
  if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Rows as CSV with a header line, in the order of `columns`. */
export function toCsv<T extends Record<string, unknown>>(columns: Array<keyof T & string>, rows: T[]): string {
  return `${columns.join(',')}\n${rows.map((r) => columns.map((c) => field(r[c])).join(',')).join('\n')}\n`;
}

/** A markdown table. */
export function mdTable(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [`| ${header.map(esc).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}
