// SPDX-License-Identifier: Apache-2.0
// The agent of the Runner tests (and of the resumed half in resume_child.mjs):
// a SandboxAgent with the SDK's own shell and filesystem capabilities and a
// `deploy` tool that needs approval, driven by the SDK's ScriptedModel.

import { Runner, tool } from '@openai/agents';
import { SandboxAgent, filesystem, shell } from '@openai/agents-core/sandbox';
import { ScriptedModel, assistantMessage, functionCall, modelResponder } from '@openai/agents-core/testing';
import { z } from 'zod';

export const runner = new Runner({ tracingDisabled: true });

export function makeAgent(model) {
  return new SandboxAgent({
    name: 'airlock-coder',
    instructions: 'Work in the sandbox.',
    model,
    capabilities: [shell(), filesystem()],
    tools: [
      tool({
        name: 'deploy',
        description: 'Deploy the workspace (a person approves it first).',
        parameters: z.object({}),
        needsApproval: true,
        execute: async () => 'deployed',
      }),
    ],
  });
}

/** Everything the model was sent in its latest request, as text (tool outputs included). */
export function seen(call) {
  return JSON.stringify(call.request.input);
}

/** Shell command through the SDK's exec_command tool. */
export function sh(cmd, callId) {
  return functionCall('exec_command', { cmd }, { callId });
}

/** An apply_patch call (the Responses API's item) for the SDK's filesystem tool. */
export function patch(operation, callId) {
  return { type: 'apply_patch_call', callId, status: 'completed', operation };
}

export { ScriptedModel, assistantMessage, functionCall, modelResponder };
