import { Command } from 'commander';
import type { JobRun } from '../lib/brain/history.js';
import type { TaskSummary } from '../lib/brain/status.js';
import { CheckFailed } from '../lib/errors.js';
import { dim, green, printJson, println, red, table, yellow } from './output.js';
import { runningConfig } from './running-config.js';

const when = (iso: string | null) => (iso === null ? '-' : iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z'));

function lastRunCell(t: TaskSummary): string {
  if (t.running) return yellow('running');
  const r = t.lastRun;
  if (r === null) return dim('never');
  if (r.finishedAt === null) return yellow(`${when(r.startedAt)} running`);
  return `${when(r.startedAt)} ${r.ok ? green('ok') : red(r.error === null ? 'problems' : 'failed')}`;
}

function outcome(run: JobRun): string {
  if (run.ok) return green('ok');
  return run.error === null ? red('problems found') : red(`failed: ${run.error}`);
}

const seconds = (run: JobRun) => ((Date.parse(run.finishedAt!) - Date.parse(run.startedAt)) / 1000).toFixed(1);

export function tasksCommand(): Command {
  const cmd = new Command('tasks').description("the brain's tasks: list (default), run, enable, disable (exit 3 when the brain is unreachable)");

  cmd
    .command('list', { isDefault: true })
    .description('every task with its schedule, state and last run, and which brain leads')
    .option('--json', 'print as JSON: { brainId, leading, leader, tasks: [...], errors }')
    .action(async (opts: { json?: boolean }) => {
      const { fetchTaskStatus } = await import('../lib/brain/tasks-client.js');
      const status = await fetchTaskStatus(runningConfig().config);
      if (opts.json) return printJson(status);
      println(status.leader === null ? yellow('no brain leads now') : `leader: ${status.leader.brainId}${status.leading ? ' (this brain)' : ''}`);
      if (status.tasks.length === 0) println('no tasks');
      else
        println(
          table(
            ['NAME', 'ACTION', 'CRON', 'TZ', 'ENABLED', 'SKIPPED', 'LAST RUN'],
            status.tasks.map((t) => [t.name, t.action, t.cron, t.timezone, t.enabled ? 'yes' : dim('no'), String(t.skipped), lastRunCell(t)]),
          ),
        );
      for (const e of status.errors) println(yellow(e));
    });

  cmd
    .command('run')
    .description('run a task now and wait for its outcome (exit 1 when it finds problems or fails)')
    .argument('<name>', 'task name')
    .option('--no-wait', 'return once the run has started')
    .option('--json', 'print as JSON: the run ({ runId } with --no-wait)')
    .action(async (name: string, opts: { wait: boolean; json?: boolean }) => {
      const { triggerTask, waitForRun } = await import('../lib/brain/tasks-client.js');
      const config = runningConfig().config;
      const { runId } = await triggerTask(config, name);
      if (!opts.wait) {
        if (opts.json) return printJson({ runId });
        return println(`started run ${runId} of ${name}`);
      }
      if (!opts.json && process.stderr.isTTY) process.stderr.write(dim(`run ${runId} of ${name} started; waiting for it to end\n`));
      const run = await waitForRun(config, runId);
      if (opts.json) printJson(run);
      else println(`run ${run.id} of ${name}: ${outcome(run)} (${seconds(run)} s)`);
      if (!run.ok) throw new CheckFailed();
    });

  for (const enabled of [true, false]) {
    cmd
      .command(enabled ? 'enable' : 'disable')
      .description(enabled ? 'schedule a task again' : 'stop scheduling a task (it can still be run by hand)')
      .argument('<name>', 'task name')
      .option('--json', 'print as JSON: the task')
      .action(async (name: string, opts: { json?: boolean }) => {
        const { setTaskEnabled } = await import('../lib/brain/tasks-client.js');
        const task = await setTaskEnabled(runningConfig().config, name, enabled);
        if (opts.json) printJson(task);
        else println(`${task.name} ${task.enabled ? 'enabled' : 'disabled'}`);
      });
  }
  return cmd;
}
