package io.troupe.actors.cluster;

/**
 * The file paths that control messages carry (a job's data file and checkpoint directory, the
 * checkpoint a rank resumes from, a checkpoint root, the job record a new coordinator reads), checked
 * against {@link AllowedRoots} as a message arrives from another node.
 */
final class NetworkPaths {
    private NetworkPaths() {
    }

    /** @throws IllegalArgumentException naming the path and the roots when one is outside */
    static void check(Object message, AllowedRoots roots) {
        if (message instanceof JobRequest j) {
            roots.check("data path", j.dataPath());
            roots.check("checkpoint directory", j.checkpointDir());
        } else if (message instanceof CoordinatorActor.SubmitJob s) {
            check(s.job(), roots);
        } else if (message instanceof WorkerActor.Assign a) {
            check(a.request(), roots);
            roots.check("checkpoint to resume from", a.resumeFrom());
        } else if (message instanceof WorkerActor.WriteCheckpoint w) {
            roots.check("checkpoint root", w.root());
        } else if (message instanceof CoordinatorActor.WorkerInfo i) {
            roots.check("job record directory", i.recordDir());
        }
    }
}
