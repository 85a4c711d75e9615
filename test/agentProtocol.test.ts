import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { BaremigError } from '../src/errors.js';
import { encode, decode } from '../src/protocol/codec.js';
import { AgentClient } from '../src/protocol/client.js';
import { PROTOCOL_VERSION, requestSchema } from '../src/protocol/messages.js';
import { authMac } from '../src/protocol/auth.js';
import { inProcessNode } from './inProcessNode.js';

const MiB = 1 << 20;
const spec = { modules: [{ name: 'memoryLoad' as const, config: { workingSetBytes: MiB, dirtyRateBytesPerSec: 0, seed: 3, fill: 'random' } }] };

let node: Awaited<ReturnType<typeof inProcessNode>>;
beforeAll(async () => {
  node = await inProcessNode('node17', { ram: 8 * MiB, boot: { ramBytes: 8 * MiB, spec } });
  node.machine.pause(); // a quiet guest: any change to its RAM would be ours
});
afterAll(async () => node.stop());

/** A raw authenticated socket: we send whatever bytes we like and read the answers. */
async function rawSession(): Promise<{ send(b: Uint8Array | string): Promise<Record<string, unknown>>; close(): void }> {
  const ws = new WebSocket(node.url, { perMessageDeflate: false });
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  const queue: Array<(m: Record<string, unknown>) => void> = [];
  ws.on('message', (d: Buffer) => queue.shift()?.(decode(d)));
  const send = (b: Uint8Array | string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      queue.push(resolve);
      ws.send(b);
      setTimeout(() => reject(new Error('no answer')), 2000);
    });
  const hello = await send(encode({ t: 'hello', id: 1, v: PROTOCOL_VERSION }));
  const nonce = Buffer.alloc(32, 5);
  const ok = await send(encode({ t: 'auth', id: 2, nonce, mac: authMac(node.key, 'client', hello.challenge as Uint8Array, nonce, 'node17') }));
  expect(ok.t).toBe('ok');
  return { send, close: () => ws.close() };
}

async function fingerprint() {
  const d = await node.machine.mem!.digest();
  return { state: node.machine.state, digest: d.hex, dirty: node.machine.mem!.dirtyCount(), vcpu: JSON.stringify(node.machine.getVcpu().vcpu, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) };
}

describe('agent authentication', () => {
  it('refuses a wrong cluster key with an actionable error and closes', async () => {
    const err = await node.connect(Buffer.alloc(32, 0xee)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BaremigError);
    expect((err as BaremigError).code).toBe('AUTH');
    expect((err as Error).message).toMatch(/wrong cluster key for node node17/);
  });

  it('refuses commands before authentication and a wrong protocol version', async () => {
    const ws = new WebSocket(node.url, { perMessageDeflate: false });
    await new Promise((r) => ws.once('open', r));
    const answers: Array<Record<string, unknown>> = [];
    ws.on('message', (d: Buffer) => answers.push(decode(d)));
    ws.send(encode({ t: 'hello', id: 1, v: 99 }));
    ws.send(encode({ t: 'memRead', id: 2, addr: 0, len: 16 }));
    await new Promise((r) => setTimeout(r, 100));
    expect(answers[0]).toMatchObject({ t: 'err', code: 'VERSION' });
    expect(answers[1]).toMatchObject({ t: 'err', code: 'AUTH' });
    ws.close();
  });

  it('talks to an agent that proves the key', async () => {
    const c = await node.connect();
    expect((await c.request('state', {})).guest).toBe('paused');
    c.close();
  });

  it('an agent at the wrong address (another node name) is refused', async () => {
    const err = await AgentClient.connect(node.url, { node: 'node42', key: node.key }).catch((e: unknown) => e);
    expect((err as BaremigError).code).toBe('INVENTORY');
  });
});

describe('hostile and malformed messages change nothing', () => {
  it('specific malformed requests get specific errors', async () => {
    const before = await fingerprint();
    const s = await rawSession();
    const cases: Array<[unknown, RegExp]> = [
      [{ t: 'memRead', id: 3, addr: 8 * MiB - 4, len: 16 }, /outside guest RAM/],
      [{ t: 'memRead', id: 4, addr: 0, len: 64 * MiB }, /len/],
      [{ t: 'memWrite', id: 5, addr: 2 ** 40, data: Buffer.alloc(4) }, /addr/],
      [{ t: 'memWrite', id: 6, addr: 8 * MiB - 2, data: Buffer.alloc(4) }, /outside guest RAM/],
      [{ t: 'nope', id: 7 }, /invalid 'nope' request/],
      [{ t: 'pause', id: 8, extra: 1 }, /Unrecognized key/i],
      [{ t: 'runProgram', id: 9, program: [{ op: 'memWrite', addr: 8 * MiB, data: Buffer.alloc(8) }] }, /outside guest RAM/],
      [{ t: 'runProgram', id: 10, program: [{ op: 'format', disk: 0 }] }, /program\.0/],
      [{ t: 'vcpuSet', id: 11, vcpu: { rip: -1 }, wallMs: 1 }, /guest is paused|invalid vCPU/],
      [{ t: 'streamPages', id: 12, which: 'all', peer: { host: '127.0.0.1', port: 1, token: Buffer.alloc(31) } }, /token/],
      [{ t: 'boot', id: 13, ramBytes: MiB, spec: { modules: [] } }, /guest is paused/],
      [{ t: 'release', id: 14, now: true }, /Unrecognized key/i],
    ];
    for (const [msg, re] of cases) {
      const r = await s.send(encode(msg));
      expect(r.t, JSON.stringify(msg)).toBe('err');
      expect(r.message as string).toMatch(re);
    }
    expect(await s.send('{"t":"state","id":1}')).toMatchObject({ t: 'err', code: 'PROTOCOL' });
    expect(await s.send(Buffer.from([0xc1, 0xff, 0x00]))).toMatchObject({ t: 'err', code: 'PROTOCOL' });
    s.close();
    expect(await fingerprint()).toEqual(before);
  });

  it('random and mutated messages: refused ones change nothing, accepted ones were valid requests', async () => {
    const s = await rawSession();
    // Mutations of requests that would change state if accepted with other values.
    const valid = [
      { t: 'memWrite', id: 20, addr: 8 * MiB, data: Buffer.alloc(16, 1) },
      { t: 'runProgram', id: 21, program: [{ op: 'memWrite', addr: 8 * MiB - 4, data: Buffer.alloc(8, 1) }] },
      { t: 'prepareIncoming', id: 22, ramBytes: 3, devices: [] },
      { t: 'resume', id: 23, x: 1 },
    ];
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...valid), fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 6 }), fc.uint8Array({ maxLength: 64 }), async (msg, flips, junk) => {
        const bytes = Buffer.from(encode(msg));
        for (const [i, v] of flips) bytes[i % bytes.length] = v;
        for (const b of [bytes, junk.length ? junk : new Uint8Array([0])]) {
          const before = await fingerprint();
          const r = await s.send(b);
          if (r.t === 'err') {
            refused++;
            expect(await fingerprint()).toEqual(before);
          } else {
            let req: unknown = null;
            try {
              req = decode(b);
            } catch {
              /* undecodable: must not have been accepted */
            }
            expect(requestSchema.safeParse(req).success).toBe(true);
          }
        }
      }),
      { numRuns: 150 },
    );
    expect(refused).toBeGreaterThan(250);
    s.close();
  });
});
