// SPDX-License-Identifier: Apache-2.0
export { AirlockSandboxClient, type AirlockSandboxClientOptions } from './client.js';
export {
  AirlockSandboxSession,
  AIRLOCK_SNAPSHOT_MAGIC,
  snapshotReference,
  type AirlockSandboxSessionState,
  type AirlockWorkspacePersistence,
} from './session.js';
export { AirlockApi, AirlockApiError, DEFAULT_SOCKET } from './api.js';
export type { ExecRequest, ExecResult, SandboxSummary, DirEntry, SnapshotSummary, CreateRequest } from './api.js';
export { manifestForAirlockd } from './manifest.js';
