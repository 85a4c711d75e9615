import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isScalar, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { BaremigError } from '../errors.js';
import { parseKey } from '../protocol/auth.js';
import { isL2Url, parseL2Url } from '../protocol/l2/transport.js';
import { parseSize } from './size.js';

/**
 * The nodes file: which nodes exist, where their agents listen, the cluster
 * key, and what hardware each has (drain planning matches on it).
 *
 *   cluster:
 *     key: <hex, ≥ 16 bytes>        # or keyFile: /etc/baremig/cluster.key
 *   nodes:
 *     node17:
 *       agent: ws://10.0.0.17:7700
 *       dataHost: 10.1.0.17          # migration-link address for page streams (default: agent host)
 *     node18:                         # a native agent on the raw migration link (hypervisor/)
 *       agent: l2://mig0/02:62:6d:00:00:12?netns=mig-coord   # coordinator interface / agent link MAC
 *                                      # dataHost: the link MAC (the default for l2 agents)
 *       ram: 4G                      # RAM a guest may use on this node
 *       devices: [pit, pic, rtl8169]
 *       pool: rack1
 */
export interface NodeEntry {
  name: string;
  agent: string;
  dataHost: string;
  key: Buffer;
  ram: number;
  devices: string[];
  pool?: string;
}

export interface Inventory {
  file: string;
  nodes: Map<string, NodeEntry>;
}

const nodeName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const WS_AGENT = /^wss?:\/\/[^\s/]+(:\d+)?\/?$/;
const LINK_MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

const nodeSchema = z.strictObject({
  agent: z.string().superRefine((v, ctx) => {
    if (WS_AGENT.test(v)) return;
    if (isL2Url(v)) {
      try {
        parseL2Url(v);
        return;
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return;
      }
    }
    ctx.addIssue({ code: 'custom', message: 'must be a ws:// or wss:// URL such as ws://10.0.0.17:7700, or an l2 address such as l2://mig0/02:62:6d:00:00:01?netns=mig-coord' });
  }),
  dataHost: z.string().min(1).max(255).optional(),
  key: z.string().optional(),
  ram: z.union([z.string(), z.number()]).optional(),
  devices: z.array(z.enum(['pit', 'pic', 'rtl8169'])).optional(),
  pool: z.string().max(64).optional(),
});

const fileSchema = z.strictObject({
  cluster: z.strictObject({ key: z.string().optional(), keyFile: z.string().optional() }).optional(),
  nodes: z.record(z.string(), nodeSchema),
});

function lineOf(doc: ReturnType<typeof parseDocument>, lc: LineCounter, path: PropertyKey[]): number | undefined {
  let node: unknown = doc.contents;
  let last: YamlNode | undefined = node as YamlNode;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === String(seg));
      if (!pair) break;
      last = (pair.value ?? pair.key) as YamlNode;
      node = pair.value;
    } else if (node && typeof node === 'object' && 'items' in node) {
      node = (node as { items: unknown[] }).items[Number(seg)];
      if (node) last = node as YamlNode;
    } else break;
  }
  const off = last?.range?.[0];
  return off === undefined ? undefined : lc.linePos(off).line;
}

/** Reads and validates a nodes file. Errors name the file and line and say what to fix. */
export function loadInventory(file: string): Inventory {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BaremigError('INVENTORY', code === 'ENOENT' ? `nodes file ${file} not found: pass --nodes-file, set BAREMIG_NODES, or run 'baremig cluster up' for a simulated cluster` : `cannot read nodes file ${file}: ${(e as Error).message}`);
  }
  return parseInventory(text, file);
}

export function parseInventory(text: string, file = 'nodes file'): Inventory {
  const lc = new LineCounter();
  // Failsafe schema: every scalar stays a string, so a hex key of only digits
  // (or one like 1e52…) is not turned into a number that loses its digits.
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true, schema: 'failsafe' });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const line = e.linePos?.[0]?.line;
    throw new BaremigError('INVENTORY', `${file}${line ? `:${line}` : ''}: not valid YAML: ${e.message.split('\n')[0]}`);
  }
  const raw = doc.toJS() as unknown;
  const parsed = fileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const line = lineOf(doc, lc, issue.path);
    const where = issue.path.map(String).join('.') || '(top level)';
    throw new BaremigError('INVENTORY', `${file}${line ? `:${line}` : ''}: ${where}: ${issue.message}`);
  }
  const f = parsed.data;
  const at = (path: PropertyKey[]) => {
    const line = lineOf(doc, lc, path);
    return `${file}${line ? `:${line}` : ''}`;
  };
  let clusterKey: Buffer | null = null;
  if (f.cluster?.key !== undefined) {
    clusterKey = parseKey(f.cluster.key);
    if (!clusterKey) throw new BaremigError('INVENTORY', `${at(['cluster', 'key'])}: cluster.key must be hex, at least 32 hex digits`);
  } else if (f.cluster?.keyFile !== undefined) {
    let k: string;
    try {
      k = readFileSync(f.cluster.keyFile, 'utf8');
    } catch (e) {
      throw new BaremigError('INVENTORY', `${at(['cluster', 'keyFile'])}: cannot read key file ${f.cluster.keyFile}: ${(e as Error).message}`);
    }
    clusterKey = parseKey(k);
    if (!clusterKey) throw new BaremigError('INVENTORY', `${at(['cluster', 'keyFile'])}: ${f.cluster.keyFile} must hold the key as hex, at least 32 hex digits`);
  }
  const nodes = new Map<string, NodeEntry>();
  for (const [name, n] of Object.entries(f.nodes)) {
    if (!nodeName.test(name)) throw new BaremigError('INVENTORY', `${at(['nodes', name])}: node name '${name}' must be letters, digits, '.', '_' or '-'`);
    let key = clusterKey;
    if (n.key !== undefined) {
      key = parseKey(n.key);
      if (!key) throw new BaremigError('INVENTORY', `${at(['nodes', name, 'key'])}: nodes.${name}.key must be hex, at least 32 hex digits`);
    }
    if (!key) throw new BaremigError('INVENTORY', `${at(['nodes', name])}: node ${name} has no key: set cluster.key or nodes.${name}.key`);
    let ram = 0;
    if (n.ram !== undefined) {
      const r = parseSize(n.ram);
      if (r === null || r <= 0) throw new BaremigError('INVENTORY', `${at(['nodes', name, 'ram'])}: nodes.${name}.ram '${n.ram}' is not a size like 4G or 512M`);
      ram = r;
    }
    let dataHost: string;
    if (isL2Url(n.agent)) {
      // a native agent streams pages over the raw link: its data address is its link MAC
      if (n.dataHost !== undefined && !LINK_MAC.test(n.dataHost)) {
        throw new BaremigError('INVENTORY', `${at(['nodes', name, 'dataHost'])}: nodes.${name}.dataHost '${n.dataHost}' must be a link MAC like 02:62:6d:00:00:01: node ${name} has an l2 agent`);
      }
      dataHost = (n.dataHost ?? parseL2Url(n.agent).peer).toLowerCase();
    } else {
      dataHost = n.dataHost ?? new URL(n.agent).hostname;
    }
    nodes.set(name, { name, agent: isL2Url(n.agent) ? n.agent : n.agent.replace(/\/$/, ''), dataHost, key, ram, devices: n.devices ?? [], ...(n.pool ? { pool: n.pool } : {}) });
  }
  if (nodes.size === 0) throw new BaremigError('INVENTORY', `${file}: lists no nodes`);
  return { file, nodes };
}

export function findNode(inv: Inventory, name: string): NodeEntry {
  const n = inv.nodes.get(name);
  if (!n) {
    const known = [...inv.nodes.keys()];
    const near = known.filter((k) => k.startsWith(name.replace(/\d+$/, ''))).slice(0, 5);
    throw new BaremigError('UNKNOWN_NODE', `unknown node '${name}' in ${inv.file}${near.length ? `; did you mean ${near.join(', ')}?` : `; known: ${known.slice(0, 10).join(', ')}`}`);
  }
  return n;
}
