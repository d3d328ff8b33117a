/**
 * Sharing plans (format, parsing, validation). The definitions live with the student architecture in
 * `models/sharing-plan.ts`, because the model layer needs them and must not import upward; this module is the
 * public home for the sharing layer and the CLI.
 */
export * from '../models/sharing-plan.js';
