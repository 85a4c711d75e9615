/**
 * Page stream throughput between two native hosted agents on the namespace
 * veth link (MTU 9000): one full pass over a guest whose RAM is random
 * (no zero pages), unshaped and with tbf shaping to 1 Gb/s.
 *
 *   npx tsx test/conformance/bench.native.ts [ramMiB=512]
 *
 * Needs root. Results go to bench/native.md by hand.
 */
import { AgentClient } from '../../src/protocol/client.js';
import { MiB, buildNative, nativeNet, nativeUnavailable } from './targets.js';

async function once(ramMiB: number, rate?: string, bandwidth?: number): Promise<string> {
  const net = await nativeNet(2, rate ? { rate } : {});
  try {
    await net.startAgent('node1', { ram: `${ramMiB + 16}M` });
    await net.startAgent('node2', { ram: `${ramMiB + 16}M` });
    const src = await AgentClient.connect(net.url('node1'), { node: 'node1', key: net.key });
    const dst = await AgentClient.connect(net.url('node2'), { node: 'node2', key: net.key });
    const ws = (ramMiB - 2) * MiB;
    await src.request('boot', { ramBytes: ramMiB * MiB, spec: { modules: [{ name: 'memoryLoad', config: { workingSetBytes: ws, dirtyRateBytesPerSec: 0, seed: 3, fill: 'random' } }] } });
    await src.request('pause', {});
    const lines: string[] = [];
    for (let i = 0; i < 3; i++) {
      await dst.request('release', {});
      const prep = await dst.request('prepareIncoming', { ramBytes: ramMiB * MiB, devices: [] });
      const peer = { host: net.mac('node2'), port: prep.port, token: prep.token };
      const r = await src.request('streamPages', bandwidth ? { which: 'all', peer, bandwidth } : { which: 'all', peer }, 600_000);
      const sec = r.ms / 1000;
      const raw = r.pages - r.zeroPages;
      lines.push(`| ${rate ?? 'none'} | ${ramMiB} MiB | ${r.pages} (${r.zeroPages} zero) | ${r.ms.toFixed(0)} | ${Math.round(r.pages / sec)} | ${((r.wireBytes * 8) / sec / 1e9).toFixed(2)} | ${((raw * 4096 * 8) / sec / 1e9).toFixed(2)} |`);
    }
    const [ds, dd] = await Promise.all([src.request('digest', {}, 600_000), dst.request('digest', {}, 600_000)]);
    if (ds.hex !== dd.hex) throw new Error('digest mismatch after the stream');
    src.close();
    dst.close();
    const st = await net.stats('node1');
    lines.push(`<!-- source agent: retransmits ${st.retransmits}, tx frames ${st.txFrames} -->`);
    return lines.join('\n');
  } finally {
    await net.stop();
  }
}

const why = nativeUnavailable();
if (why) {
  console.log(`skipped: ${why}`);
  process.exit(0);
}
buildNative();
const ram = Number(process.argv[2] ?? 512);
console.log('| shaping | guest RAM | pages | ms | pages/s | stream Gb/s | page data Gb/s |');
console.log('| --- | --- | --- | --- | --- | --- | --- |');
console.log(await once(ram));
console.log(await once(ram, '1gbit'));
