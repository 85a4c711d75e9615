import { describe, expect, it } from 'vitest';
import { BaremigError } from '../errors.js';
import { findNode, parseInventory } from './nodesFile.js';

const KEY = 'ab'.repeat(32);
const good = `cluster:
  key: ${KEY}
nodes:
  node17:
    agent: ws://127.0.0.1:7017
    ram: 4G
    devices: [pit, pic]
  node42:
    agent: ws://127.0.0.1:7042
    dataHost: 10.1.0.42
`;

function err(text: string): BaremigError {
  try {
    parseInventory(text, 'nodes.yaml');
  } catch (e) {
    return e as BaremigError;
  }
  throw new Error('expected an error');
}

describe('nodes file', () => {
  it('parses nodes, keys, sizes and defaults', () => {
    const inv = parseInventory(good, 'nodes.yaml');
    const n = findNode(inv, 'node17');
    expect(n.ram).toBe(4 * 1024 ** 3);
    expect(n.key.toString('hex')).toBe(KEY);
    expect(n.dataHost).toBe('127.0.0.1');
    expect(findNode(inv, 'node42').dataHost).toBe('10.1.0.42');
  });

  it('names the line of a bad agent address', () => {
    const e = err(good.replace('ws://127.0.0.1:7042', 'http://x'));
    expect(e.code).toBe('INVENTORY');
    expect(e.message).toMatch(/^nodes\.yaml:9: nodes\.node42\.agent: must be a ws/);
    expect(e.message.split('\n')).toHaveLength(1);
  });

  it('accepts l2 addresses of native agents; their data host is the link MAC', () => {
    const l2 = `${good}  node5:\n    agent: l2://mig0/02:62:6D:00:00:05?netns=mig-coord\n  node6:\n    agent: l2://mig0/02:62:6d:00:00:06\n    dataHost: 02:62:6d:00:00:66\n`;
    const inv = parseInventory(l2, 'nodes.yaml');
    expect(findNode(inv, 'node5').agent).toBe('l2://mig0/02:62:6D:00:00:05?netns=mig-coord');
    expect(findNode(inv, 'node5').dataHost).toBe('02:62:6d:00:00:05');
    expect(findNode(inv, 'node6').dataHost).toBe('02:62:6d:00:00:66');
  });

  it('names the line of a bad l2 address and says what is wrong', () => {
    const bad = (agent: string, extra = '') => err(`${good}  node5:\n    agent: ${agent}\n${extra}`);
    expect(bad('l2://mig0/02:62:6d:00:05').message).toMatch(/^nodes\.yaml:12: nodes\.node5\.agent: 'l2:\/\/mig0\/02:62:6d:00:05' is not an l2 address like l2:\/\/mig0\/02:62:6d:00:00:01\?netns=coord/);
    expect(bad('l2://mig0/02:62:6d:00:00:05?netns=a b').message).toMatch(/^nodes\.yaml:12: nodes\.node5\.agent: l2 address .* unknown or bad parameter netns/);
    expect(bad('l2://mig0/02:62:6d:00:00:05?vlan=3').message).toMatch(/^nodes\.yaml:12: .*bad parameter vlan/);
    expect(bad('l2://mig0/02:62:6d:00:00:05', '    dataHost: 10.1.0.5\n').message).toMatch(/^nodes\.yaml:13: nodes\.node5\.dataHost '10\.1\.0\.5' must be a link MAC/);
    for (const a of ['l2://mig0/02:62:6d:00:05', 'l2://mig0/02:62:6d:00:00:05?vlan=3']) expect(bad(a).message.split('\n')).toHaveLength(1);
  });

  it('names the line of a bad size and a bad key', () => {
    expect(err(good.replace('ram: 4G', 'ram: lots')).message).toMatch(/^nodes\.yaml:6: .*ram 'lots' is not a size/);
    expect(err(good.replace(KEY, 'xyz')).message).toMatch(/^nodes\.yaml:2: cluster\.key must be hex/);
  });

  it('rejects unknown fields, unknown devices, broken YAML, duplicate nodes', () => {
    expect(err(good.replace('ram: 4G', 'rma: 4G')).message).toMatch(/nodes\.yaml:\d+: nodes\.node17: Unrecognized key/i);
    expect(err(good.replace('[pit, pic]', '[pit, gpu]')).message).toMatch(/nodes\.node17\.devices\.1/);
    expect(err('nodes: [').message).toMatch(/^nodes\.yaml:1: not valid YAML/);
    expect(err(good + '  node17:\n    agent: ws://h:1\n').message).toMatch(/not valid YAML.*unique/i);
    expect(err('nodes: {}\n').message).toMatch(/lists no nodes/);
  });

  it('unknown node names get an actionable error', () => {
    const inv = parseInventory(good);
    try {
      findNode(inv, 'node99');
      expect.unreachable();
    } catch (e) {
      expect((e as BaremigError).code).toBe('UNKNOWN_NODE');
      expect((e as Error).message).toMatch(/unknown node 'node99'.*did you mean node17, node42/);
    }
  });
});

describe('nodes file scalars', () => {
  it('a key of only digits stays the key (not a number)', () => {
    const inv = parseInventory(good.replace(KEY, '0'.repeat(64)));
    expect(findNode(inv, 'node17').key.toString('hex')).toBe('0'.repeat(64));
  });
});
