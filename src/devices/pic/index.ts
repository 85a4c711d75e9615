/** The cascaded 8259 pair: registers, simulator model, hypervisor shadow, reconstructor. */
export * from './registers.js';
export { PicPair, type PicAcknowledge, type PicChipInternal, type PicInternal, type PicPairOptions } from './model.js';
export {
  PIC_SHADOW_KEY,
  decodeIcw,
  initialPicShadow,
  isPicShadow,
  reducePicShadow,
  type PicChipShadow,
  type PicIcwConfig,
  type PicInta,
  type PicShadow,
  type PicShadowInput,
} from './shadow.js';
export {
  limitations,
  picReconstructor,
  planPicRestore,
  type PicChipState,
  type PicLimitation,
  type PicRestorePlan,
  type PicState,
} from './reconstructor.js';
