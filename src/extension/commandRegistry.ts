import * as vscode from 'vscode';
import { describeError, isUserError } from '../core/errors';

/**
 * The one way commands are registered: every failure is logged, and shown once as a notification
 * with the problem, what to do, and a way to the log. Cancellation is silent.
 */
export function registerCommand(
  context: vscode.ExtensionContext,
  log: vscode.LogOutputChannel,
  id: string,
  handler: (...args: any[]) => unknown,
): void {
  context.subscriptions.push(
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        return await handler(...args);
      } catch (err) {
        if (isUserError(err) && err.code === 'E_CANCELLED') {
          log.info(`${id}: cancelled`);
          return undefined;
        }
        const text = describeError(err).replace(/\n\s*→\s*/g, ' ');
        if (isUserError(err)) log.warn(`${id}: ${text}`);
        else log.error(`${id}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
        void vscode.window.showErrorMessage(text, 'Show Log').then((choice) => {
          if (choice === 'Show Log') log.show(true);
        });
        // Callers that run commands programmatically (tests, other extensions) see the failure too.
        throw err;
      }
    }),
  );
}
