// SPDX-License-Identifier: Apache-2.0
// The SDK's Manifest as airlockd takes it (docs/api.md, "Create"): airlockd
// materializes file, dir, local_file and local_dir entries itself, inside
// the sandbox's namespaces, so the client sends the manifest rather than
// writing files one by one.  What airlockd cannot do is refused here, by
// name, before a sandbox exists.

import path from 'node:path';
import {
  Manifest,
  Permissions,
  SandboxUnsupportedFeatureError,
  type Entry,
} from '@openai/agents-core/sandbox';

const PROVIDER = 'AirlockSandboxClient';

function unsupported(feature: string, details: Record<string, unknown>): never {
  throw new SandboxUnsupportedFeatureError(`${PROVIDER}: ${feature} is not supported by airlockd`, {
    provider: PROVIDER,
    feature,
    ...details,
  });
}

function entryJson(key: string, entry: Entry): Record<string, unknown> {
  const out: Record<string, unknown> = { type: entry.type };
  if (entry.description !== undefined) out.description = entry.description;
  if (entry.ephemeral !== undefined) out.ephemeral = entry.ephemeral;
  if (entry.group !== undefined) unsupported('group ownership of manifest entries', { path: key });
  if (entry.permissions !== undefined) {
    out.permissions = new Permissions(entry.permissions).toMode() & 0o1777;
  }
  switch (entry.type) {
    case 'file':
      out.content =
        typeof entry.content === 'string'
          ? entry.content
          : { type: 'base64', data: Buffer.from(entry.content).toString('base64') };
      break;
    case 'dir':
      if (entry.children) {
        out.children = Object.fromEntries(
          Object.entries(entry.children).map(([name, child]) => [name, entryJson(`${key}/${name}`, child)]),
        );
      }
      break;
    case 'local_file':
    case 'local_dir':
      // airlockd reads host paths as root and wants them absolute; the SDK's
      // are relative to this process's directory.
      out.src = path.resolve(entry.src);
      break;
    default:
      unsupported(`manifest entry type '${entry.type}'`, { path: key });
  }
  return out;
}

/** The manifest as JSON for `POST /v1/sandboxes` (environment goes separately, materialized). */
export function manifestForAirlockd(manifest: Manifest): Record<string, unknown> {
  if (manifest.users.length > 0 || manifest.groups.length > 0) {
    unsupported('manifest users and groups', { users: manifest.users.length, groups: manifest.groups.length });
  }
  if (manifest.extraPathGrants.length > 0) {
    unsupported('extra path grants (host paths inside the sandbox)', {});
  }
  return {
    version: 1,
    root: manifest.root,
    entries: Object.fromEntries(
      Object.entries(manifest.entries).map(([key, entry]) => [key, entryJson(key, entry as Entry)]),
    ),
  };
}

/** One entry as airlockd takes it (materializeEntry, applyManifest). */
export function entryForAirlockd(key: string, entry: Entry): Record<string, unknown> {
  return entryJson(key, entry);
}
