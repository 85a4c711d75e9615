import type { NodeStatus } from '../cli/commands/nodes.js';
import type { Inventory } from '../inventory/nodesFile.js';
import { formatBytes } from '../inventory/size.js';
import type { Plan, PlanItem } from './types.js';

/**
 * Drain planning, pure: from what the agents and the nodes file say about
 * each node, choose a destination for every guest and put the migrations in
 * waves under the concurrency budget. `--dry-run` prints exactly this; the
 * real run journals and follows exactly this (and on a retry asks
 * `chooseDestination` again).
 */

/** One node as planning sees it. */
export interface NodeView {
  name: string;
  reachable: boolean;
  guest?: string;
  /** RAM of the guest running here (agent), bytes. */
  guestRamBytes: number;
  /** RAM a guest may have here: the agent's capacity, and the nodes file's `ram` when it sets one. */
  capacity: number;
  /** Device kinds the agent reports (null when unreachable). */
  agentDevices: string[] | null;
  /** Device kinds the nodes file declares. */
  fileDevices: string[];
  pool?: string;
  cordoned: boolean;
  unreachableReason?: string;
}

export function nodeViews(inv: Inventory, statuses: NodeStatus[], cordoned: Set<string>): NodeView[] {
  const byName = new Map(statuses.map((s) => [s.name, s]));
  return [...inv.nodes.values()].map((n): NodeView => {
    const s = byName.get(n.name);
    const reachable = s?.reachable === true;
    const agentCap = reachable ? (s!.ramCapacity ?? 0) : 0;
    const capacity = reachable ? (n.ram > 0 ? Math.min(agentCap, n.ram) : agentCap) : n.ram;
    return {
      name: n.name,
      reachable,
      ...(s?.guest !== undefined ? { guest: s.guest } : {}),
      guestRamBytes: reachable && (s!.guest === 'running' || s!.guest === 'paused') ? (s!.ramBytes ?? 0) : 0,
      capacity,
      agentDevices: reachable ? [...(s!.devices ?? [])] : null,
      fileDevices: [...n.devices],
      ...(n.pool !== undefined ? { pool: n.pool } : {}),
      cordoned: cordoned.has(n.name),
      ...(!reachable ? { unreachableReason: s?.error?.message ?? 'no answer' } : {}),
    };
  });
}

export const byName = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });

/** What a guest needs of a destination. */
export interface GuestNeeds {
  guest: string;
  source: string;
  ramBytes: number;
  agentDevices: string[] | null;
  fileDevices: string[];
}

export function guestName(node: string): string {
  return `guest@${node}`;
}

export function needsOf(source: NodeView, guest = guestName(source.name)): GuestNeeds {
  return { guest, source: source.name, ramBytes: source.guestRamBytes, agentDevices: source.agentDevices, fileDevices: source.fileDevices };
}

const kinds = (d: string[]) => [...new Set(d)].sort().join(',');
const showKinds = (d: string[]) => (d.length ? `[${kinds(d)}]` : 'no devices');

/** Why `node`'s hardware cannot take the guest, or null. Same device kinds (as the agents report them and as the nodes file declares them) and enough RAM. */
export function hardwareMismatch(g: GuestNeeds, node: NodeView): string | null {
  if (g.agentDevices && node.agentDevices && kinds(g.agentDevices) !== kinds(node.agentDevices)) return `has ${showKinds(node.agentDevices)}, the guest uses ${showKinds(g.agentDevices)}`;
  if (kinds(g.fileDevices) !== kinds(node.fileDevices)) return `nodes file gives it ${showKinds(node.fileDevices)}, the guest's node ${showKinds(g.fileDevices)}`;
  if (node.capacity < g.ramBytes) return `${formatBytes(node.capacity)} RAM, the guest needs ${formatBytes(g.ramBytes)}`;
  return null;
}

export interface ChoiceContext {
  to?: string[];
  pool?: string;
  /** Destinations already chosen in this job (for other guests, or tried by this one). */
  reserved: Set<string>;
  /** Nodes that failed as destinations in this job. */
  excluded: Set<string>;
}

/** Why `node` cannot be this guest's destination now, or null. */
export function candidateProblem(g: GuestNeeds, node: NodeView, ctx: ChoiceContext): string | null {
  if (ctx.to && !ctx.to.includes(node.name)) return 'not in --to';
  if (ctx.pool !== undefined && node.pool !== ctx.pool) return `in ${node.pool ? `pool ${node.pool}` : 'no pool'}`;
  if (node.cordoned) return 'cordoned';
  if (ctx.excluded.has(node.name)) return 'failed as a destination in this drain';
  if (!node.reachable) return `unreachable (${node.unreachableReason ?? 'no answer'})`;
  if (node.guest === 'running' || node.guest === 'paused' || node.guest === 'incoming') return `busy (guest ${node.guest})`;
  if (ctx.reserved.has(node.name)) return 'chosen for another guest';
  return hardwareMismatch(g, node);
}

export type Choice = { destination: string } | { destination: null; reason: string };

/**
 * The destination for one guest: among the nodes that can take it, the one
 * with the least RAM that fits (best fit keeps big nodes for big guests),
 * then by name. Deterministic for equal inputs.
 */
export function chooseDestination(g: GuestNeeds, nodes: NodeView[], ctx: ChoiceContext): Choice {
  const rejected: Array<[string, string]> = [];
  const ok: NodeView[] = [];
  for (const n of nodes) {
    if (n.name === g.source) continue;
    const p = candidateProblem(g, n, ctx);
    if (p === null) ok.push(n);
    else rejected.push([n.name, p]);
  }
  if (ok.length) {
    ok.sort((a, b) => a.capacity - b.capacity || byName(a.name, b.name));
    return { destination: ok[0]!.name };
  }
  // Nodes outside --to or the pool were never candidates: listing them is noise.
  const shown = rejected.filter(([, p]) => p !== 'not in --to' && !p.startsWith('in pool ') && p !== 'in no pool').sort(([a], [b]) => byName(a, b));
  const what = `no destination for ${g.guest} (${formatBytes(g.ramBytes)}, ${showKinds(g.agentDevices ?? g.fileDevices)})`;
  if (shown.length === 0) {
    const scope = ctx.to ? `--to ${ctx.to.join(' ')} names no other node` : ctx.pool !== undefined ? `pool ${ctx.pool} has no other node` : 'the nodes file lists no other node';
    return { destination: null, reason: `${what}: ${scope}` };
  }
  const list = shown.slice(0, 12).map(([n, p]) => `${n} ${p}`);
  return { destination: null, reason: `${what}: ${list.join('; ')}${shown.length > 12 ? `; and ${shown.length - 12} more` : ''}` };
}

/** The migration links a migration uses: with our nodes file, each node's one migration link. */
export function linkKeys(source: string, destination: string): string[] {
  return [source, destination];
}

export interface Budget {
  parallel: number;
  perLink: number;
  links?: (source: string, destination: string) => string[];
}

/**
 * Puts placed items in waves: each wave holds at most `parallel`
 * migrations and uses each link at most `perLink` times; an item goes in the
 * earliest wave with room. The start order is by wave, then by the given
 * order. The runner starts migrations in this order as budget frees up.
 */
export function assignWaves(items: Array<Omit<PlanItem, 'order' | 'wave'>>, budget: Budget): PlanItem[] {
  const links = budget.links ?? linkKeys;
  const waveCount: number[] = [];
  const waveLinks: Array<Map<string, number>> = [];
  const placed: Array<{ it: Omit<PlanItem, 'order' | 'wave'>; wave: number | null; idx: number }> = [];
  items.forEach((it, idx) => {
    if (it.destination === null) {
      placed.push({ it, wave: null, idx });
      return;
    }
    const ls = links(it.source, it.destination);
    for (let w = 0; ; w++) {
      waveCount[w] ??= 0;
      waveLinks[w] ??= new Map();
      const lm = waveLinks[w]!;
      if (waveCount[w]! < budget.parallel && ls.every((l) => (lm.get(l) ?? 0) < budget.perLink)) {
        waveCount[w]!++;
        for (const l of ls) lm.set(l, (lm.get(l) ?? 0) + 1);
        placed.push({ it, wave: w + 1, idx });
        return;
      }
    }
  });
  placed.sort((a, b) => (a.wave ?? Infinity) - (b.wave ?? Infinity) || a.idx - b.idx);
  return placed.map((p, i) => ({ ...p.it, order: i + 1, wave: p.wave }));
}

export interface DrainPlanInput {
  nodes: NodeView[];
  /** Nodes to drain, in the operator's order. */
  drain: string[];
  to?: string[];
  pool?: string;
  parallel: number;
  perLink: number;
}

/** The plan of a drain. */
export function planDrain(input: DrainPlanInput): Plan {
  const byNode = new Map(input.nodes.map((n) => [n.name, n]));
  const empty: string[] = [];
  const raw: Array<Omit<PlanItem, 'order' | 'wave'>> = [];
  const toPlace: Array<{ idx: number; needs: GuestNeeds }> = [];
  for (const name of input.drain) {
    const v = byNode.get(name);
    const guest = guestName(name);
    if (!v) {
      raw.push({ guest, source: name, destination: null, ramBytes: 0, devices: [], reason: `${name} is not in the nodes file` });
      continue;
    }
    if (!v.reachable) {
      raw.push({ guest, source: name, destination: null, ramBytes: 0, devices: v.fileDevices, reason: `${name} is unreachable (${v.unreachableReason ?? 'no answer'}): cannot tell whether it runs a guest` });
      continue;
    }
    if (v.guest === 'none' || v.guest === 'released' || v.guest === undefined) {
      empty.push(name);
      continue;
    }
    const devices = v.agentDevices ?? v.fileDevices;
    if (v.guest !== 'running') {
      raw.push({ guest, source: name, destination: null, ramBytes: v.guestRamBytes, devices, reason: `the guest on ${name} is ${v.guest}, not running: an interrupted migration? check 'baremig nodes' (and 'baremig drain --resume')` });
      continue;
    }
    toPlace.push({ idx: raw.length, needs: needsOf(v, guest) });
    raw.push({ guest, source: name, destination: null, ramBytes: v.guestRamBytes, devices });
  }
  // Biggest guests choose first: best fit then leaves room for them.
  const reserved = new Set<string>();
  const order = [...toPlace].sort((a, b) => b.needs.ramBytes - a.needs.ramBytes || a.idx - b.idx);
  for (const { idx, needs } of order) {
    const c = chooseDestination(needs, input.nodes, { ...(input.to ? { to: input.to } : {}), ...(input.pool !== undefined ? { pool: input.pool } : {}), reserved, excluded: new Set() });
    if (c.destination !== null) {
      reserved.add(c.destination);
      raw[idx] = { ...raw[idx]!, destination: c.destination };
    } else raw[idx] = { ...raw[idx]!, reason: c.reason };
  }
  return { items: assignWaves(raw, input), empty };
}

export interface ReturnPlanInput {
  nodes: NodeView[];
  /** Guests to bring home: where each runs now and where it came from. */
  guests: Array<{ guest: string; location: string; home: string }>;
  parallel: number;
  perLink: number;
}

/** The plan of a return: every guest back to the node it was drained from. */
export function planReturn(input: ReturnPlanInput): Plan {
  const byNode = new Map(input.nodes.map((n) => [n.name, n]));
  const raw: Array<Omit<PlanItem, 'order' | 'wave'>> = [];
  for (const g of input.guests) {
    const src = byNode.get(g.location);
    const home = byNode.get(g.home);
    const base = { guest: g.guest, source: g.location, ramBytes: src?.guestRamBytes ?? 0, devices: src?.agentDevices ?? src?.fileDevices ?? [] };
    if (!src || !home) {
      raw.push({ ...base, destination: null, reason: `${!src ? g.location : g.home} is not in the nodes file` });
      continue;
    }
    if (!src.reachable || src.guest !== 'running') {
      raw.push({ ...base, destination: null, reason: src.reachable ? `${g.location} is ${src.guest === 'none' || src.guest === 'released' ? 'idle' : `holding a ${src.guest} guest`}: ${g.guest} is not running there` : `${g.location} is unreachable (${src.unreachableReason ?? 'no answer'})` });
      continue;
    }
    const p = candidateProblem(needsOf(src, g.guest), home, { reserved: new Set(), excluded: new Set() });
    raw.push(p === null ? { ...base, destination: g.home } : { ...base, destination: null, reason: `${g.home} cannot take ${g.guest} back: ${p}` });
  }
  return { items: assignWaves(raw, input), empty: [] };
}

/** The plan as an operator reads it (the dry run prints this; so does the real run before it starts). */
export function planText(kind: 'drain' | 'return', p: Plan): string {
  const lines: string[] = [];
  const placed = p.items.filter((i) => i.destination !== null);
  lines.push(`${kind} plan: ${placed.length} migration(s) in ${new Set(placed.map((i) => i.wave)).size} wave(s)${p.items.length > placed.length ? `, ${p.items.length - placed.length} guest(s) cannot move` : ''}`);
  let wave: number | null = -1;
  for (const i of p.items) {
    if (i.wave !== wave) {
      wave = i.wave;
      lines.push(wave === null ? '  cannot move:' : `  wave ${wave}:`);
    }
    lines.push(i.destination !== null ? `    ${String(i.order).padStart(2)}. ${i.guest.padEnd(18)} ${i.source} → ${i.destination}  (${formatBytes(i.ramBytes)}, ${showKinds(i.devices)})` : `    ${String(i.order).padStart(2)}. ${i.guest.padEnd(18)} ${i.reason ?? ''}`);
  }
  for (const n of p.empty) lines.push(`  ${n}: no guest to move`);
  return lines.join('\n');
}
