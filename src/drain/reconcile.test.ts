import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Seen, reconcile } from './reconcile.js';

const up = (guest: 'none' | 'running' | 'paused' | 'incoming' | 'released'): Seen => ({ reachable: true, guest });
const down: Seen = { reachable: false };

describe('reconcile: where is the guest whose migration outcome the journal lacks', () => {
  it('finished on the agents but not journaled: found on the destination, the paused source released', () => {
    expect(reconcile('a', 'b', up('released'), up('running'))).toMatchObject({ found: 'b', action: 'none', certain: true });
    expect(reconcile('a', 'b', up('paused'), up('running'))).toMatchObject({ found: 'b', action: 'release-source', certain: true });
    expect(reconcile('a', 'b', down, up('running'))).toMatchObject({ found: 'b', action: 'none', certain: true });
  });
  it('not finished: on the source; a paused source resumes only if the destination never ran', () => {
    expect(reconcile('a', 'b', up('running'), up('released'))).toMatchObject({ found: 'a', action: 'none' });
    expect(reconcile('a', 'b', up('running'), down)).toMatchObject({ found: 'a', action: 'none' });
    expect(reconcile('a', 'b', up('paused'), up('released'))).toMatchObject({ found: 'a', action: 'resume-source', certain: true });
    expect(reconcile('a', 'b', up('paused'), up('none'))).toMatchObject({ found: 'a', action: 'resume-source' });
  });
  it('waits while the destination is still receiving, then will not guess', () => {
    expect(reconcile('a', 'b', up('paused'), up('incoming'))).toMatchObject({ action: 'wait' });
    expect(reconcile('a', 'b', up('paused'), up('incoming'), true)).toMatchObject({ found: null, action: 'none', certain: false });
  });
  it('cannot tell: touches nothing', () => {
    expect(reconcile('a', 'b', up('paused'), down)).toMatchObject({ found: null, action: 'none', certain: false });
    expect(reconcile('a', 'b', up('paused'), up('paused'))).toMatchObject({ found: null, action: 'none', certain: false });
    expect(reconcile('a', 'b', up('released'), up('released'))).toMatchObject({ found: null, certain: false });
    expect(reconcile('a', 'b', down, up('none'))).toMatchObject({ found: null, certain: false });
  });
  it('never makes a second running copy', () => {
    const seen = fc.oneof(fc.constant(down), fc.constantFrom('none', 'running', 'paused', 'incoming', 'released').map((g) => up(g as never)));
    fc.assert(
      fc.property(seen, seen, fc.boolean(), (s, d, last) => {
        const r = reconcile('a', 'b', s, d, last);
        // Resuming the source: only when the destination answered and is not running anything.
        if (r.action === 'resume-source') expect(d.reachable && d.guest !== 'running' && d.guest !== 'incoming' && d.guest !== 'paused').toBe(true);
        if (r.action === 'resume-source') expect(s).toEqual(up('paused'));
        if (r.action === 'release-source') expect(d).toEqual(up('running'));
        if (r.found === 'a') expect(r.action === 'resume-source' || (s.reachable && s.guest === 'running')).toBe(true);
        if (r.found === 'b') expect(d).toEqual(up('running'));
      }),
    );
  });
});
