// What the Nomad driver records between phases: plain JSON (job versions, modify indexes, ids).
export interface NomadPhaseState extends Record<string, unknown> {
  job: string;
  /** The job's version when the task began: what restore goes back to. */
  previousVersion: number;
  /** The job's JobModifyIndex when the task read it: the check-and-set index of the register. */
  jobModifyIndex: number;
  /** "group/task" → component, as mapped for this task. */
  tasks: Record<string, string>;
  newVersion?: number;
  evalId?: string;
  deploymentId?: string;
  /** The deployment's canaries are healthy and wait for Ferry to promote them (switch). */
  awaitingPromotion?: boolean;
  alreadyDeployed?: boolean;
}
