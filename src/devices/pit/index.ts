/** The 8254 PIT: register-exact model, hypervisor shadow, reconstructor. */
export * from './registers.js';
export { Pit, type PitChannelInternal, type PitInternal, type PitPhase } from './model.js';
export {
  PIT_SHADOW_KEY,
  initialPitShadow,
  pitShadowSpec,
  reducePitShadow,
  type PitChannelShadow,
  type PitShadow,
} from './shadow.js';
export {
  createPitReconstructor,
  pitLimitations,
  pitReconstructor,
  planPitRestore,
  type PitCapturedPhase,
  type PitChannelPlan,
  type PitChannelState,
  type PitDeviation,
  type PitReconstructorOptions,
  type PitRestorePlan,
  type PitState,
} from './reconstructor.js';
