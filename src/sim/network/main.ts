/**
 * The service network as its own OS process (so it outlives a detached
 * `cluster up`, and a test can kill it): configured by BAREMIG_SWITCH_CONFIG
 * (a ServiceNetworkConfig as JSON), prints one READY line with its ports'
 * endpoints, logs MAC moves to stderr, stops on SIGTERM.
 */
import { ServiceNetwork, type ServiceNetworkConfig } from './server.js';

const SWITCH_READY_PREFIX = 'BAREMIG-SWITCH-READY ';

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.BAREMIG_SWITCH_CONFIG ?? '{}') as ServiceNetworkConfig;
  const net = await ServiceNetwork.start({
    ...cfg,
    onMove: (mac, from, to) => process.stderr.write(`${new Date().toISOString()} ${mac} moved ${from} -> ${to}\n`),
  });
  process.stdout.write(`${SWITCH_READY_PREFIX}${JSON.stringify({ ports: net.endpoints(), pid: process.pid })}\n`);
  const stop = () => {
    net.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.on('error', () => {});
}

main().catch((e: unknown) => {
  process.stderr.write(`switch failed to start: ${(e as Error).message}\n`);
  process.exit(1);
});
