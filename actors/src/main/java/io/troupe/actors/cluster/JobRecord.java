package io.troupe.actors.cluster;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.checkpoint.CheckpointException;
import io.troupe.models.checkpoint.Checkpoints;
import io.troupe.models.checkpoint.JsonChecksum;
import io.troupe.runtime.transport.JobIdentity;
import java.lang.reflect.RecordComponent;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The durable record of a cluster job ({@code job.json} beside its checkpoints), written by the
 * coordinator with the checkpoint protocol (temporary file, fsync, atomic rename) at every change of
 * epoch, commit, fault and end: what a new coordinator incarnation needs to carry the job on. It carries a CRC32C
 * of its own values ({@link JsonChecksum}): a damaged step, layout or setting is refused, not carried on.
 *
 * <pre>{@code
 * {"format": 1, "job_id": "1a2b3c4d", "epoch": 3, "state": "running",
 *  "layout": "1x2x1", "microbatches": 4,           // the layout the job runs now (dp may have shrunk)
 *  "last_committed_step": 20, "last_checkpoint": "/runs/a/checkpoints/step-00000020",
 *  "submitter": "pekko://troupe@127.0.0.1:25601/system/job-listener-1#123",  // the client's own listener
 *  "observer": "pekko://troupe@127.0.0.1:25520/user/jobs/job-0#456",         // the gateway's, for metrics
 *  "spec": {"model": "small", "layout": "2x2", ...},  // the job as submitted, every JobRequest field
 *  "faults": [{"epoch": 1, "at_ms": 1733360000000, "step": 14, "reason": "lost member ... hosting rank(s) [3]"},
 *             {"epoch": 2, "at_ms": 1733360090000, "step": 31, "reason": "member ... leaving ...", "planned": true}],
 *  "handover": "pekko://troupe@10.0.0.1:25520"}   // only while a leaving coordinator hands the job over
 * }</pre>
 *
 * @param layout       the layout the job runs now ({@code spec.layout()} unless dp shrank)
 * @param microbatches the micro-batches per replica now
 * @param lastCheckpoint the last committed checkpoint directory, "" before the first
 * @param submitter    the serialized actor ref of the submitter's own listener (events go straight
 *                     to it from any coordinator incarnation), "" when unknown
 * @param observer     the serialized actor ref of the job gateway's publisher on the node the job came
 *                     through (that node's metrics), "" when none
 * @param faults       every cause that restarted (or ended) the job, oldest first: faults, and planned departures
 *                     (a member that left the cluster gracefully)
 * @param handover     the address of a coordinator whose node is leaving the cluster gracefully while it holds the
 *                     job ("" when none): the next incarnation takes the job over without counting a fault, and
 *                     clears it
 */
public record JobRecord(JobIdentity identity, State state, JobRequest spec, String layout, int microbatches,
                        long lastCommittedStep, String lastCheckpoint, String submitter, String observer,
                        List<Fault> faults, String handover) {
    public static final String FILE = "job.json";
    public static final int FORMAT = 1;

    /**
     * Where the job stands: {@code STOPPED} when its submitter ended it (an interrupted
     * {@code troupe train}, {@code JobHandle.cancel}), not a fault: its last commit resumes it.
     */
    public enum State { RUNNING, FINISHED, FAILED, STOPPED }

    /**
     * A restart's cause: the epoch it ended, when (epoch millis), the step the job had committed up to when it came
     * (the next step to commit; -1 where a record written without it does not say), why, and whether it was
     * {@code planned}: a member that left the cluster gracefully (a rolling restart, a scale-down), which
     * {@link RestartBudget} counts only when the job made no progress after it; otherwise a fault.
     */
    public record Fault(long epoch, long atMs, long step, String reason, boolean planned) {
        /** A fault (not planned). */
        public Fault(long epoch, long atMs, long step, String reason) {
            this(epoch, atMs, step, reason, false);
        }

        /** A fault whose step is not known. */
        public Fault(long epoch, long atMs, String reason) {
            this(epoch, atMs, -1, reason, false);
        }

        @Override
        public String toString() {
            return "epoch " + epoch + " at " + java.time.Instant.ofEpochMilli(atMs)
                + (step >= 0 ? " in step " + step : "") + ": " + reason + (planned ? " (planned)" : "");
        }
    }

    public JobRecord {
        faults = List.copyOf(faults);
        if (handover == null) {
            throw new IllegalArgumentException("a job record's handover is an address or \"\", not null");
        }
    }

    /** A record with no hand-over under way. */
    public JobRecord(JobIdentity identity, State state, JobRequest spec, String layout, int microbatches,
                     long lastCommittedStep, String lastCheckpoint, String submitter, String observer,
                     List<Fault> faults) {
        this(identity, state, spec, layout, microbatches, lastCommittedStep, lastCheckpoint, submitter, observer,
            faults, "");
    }

    /** Restarts so far: the faults the job survived or ended on, and its planned departures. */
    public int restarts() {
        return faults.size();
    }

    public JobRecord withEpoch(JobIdentity next) {
        if (next.jobId() != identity.jobId() || next.epoch() < identity.epoch()) {
            throw new IllegalArgumentException("a job record's identity only moves forward: " + identity + " -> "
                + next);
        }
        return new JobRecord(next, state, spec, layout, microbatches, lastCommittedStep, lastCheckpoint, submitter,
            observer, faults, handover);
    }

    public JobRecord withCommit(long step, String checkpoint) {
        return new JobRecord(identity, state, spec, layout, microbatches, step, checkpoint, submitter, observer,
            faults, handover);
    }

    public JobRecord withLayout(String newLayout, int newMicrobatches) {
        return new JobRecord(identity, state, spec, newLayout, newMicrobatches, lastCommittedStep, lastCheckpoint,
            submitter, observer, faults, handover);
    }

    /** The record with {@code newObserver} (a serialized reference, "" for none) as the job's observer. */
    public JobRecord withObserver(String newObserver) {
        return new JobRecord(identity, state, spec, layout, microbatches, lastCommittedStep, lastCheckpoint, submitter,
            newObserver, faults, handover);
    }

    public JobRecord withFault(Fault f) {
        List<Fault> all = new ArrayList<>(faults);
        all.add(f);
        return new JobRecord(identity, state, spec, layout, microbatches, lastCommittedStep, lastCheckpoint, submitter,
            observer, all, handover);
    }

    public JobRecord withState(State s) {
        return new JobRecord(identity, s, spec, layout, microbatches, lastCommittedStep, lastCheckpoint, submitter,
            observer, faults, handover);
    }

    /** The record with {@code address} as the leaving coordinator handing the job over ("" when none is). */
    public JobRecord withHandover(String address) {
        return new JobRecord(identity, state, spec, layout, microbatches, lastCommittedStep, lastCheckpoint, submitter,
            observer, faults, address);
    }

    /** Writes {@code dir/job.json} durably and atomically. */
    public void write(Path dir) {
        Checkpoints.writeAtomically(dir.resolve(FILE), toJson().getBytes(StandardCharsets.UTF_8));
    }

    /** Reads {@code dir/job.json}; null when there is none. */
    public static JobRecord read(Path dir) {
        Path file = dir.resolve(FILE);
        if (!Files.isRegularFile(file)) {
            return null;
        }
        try {
            return parse(Files.readString(file), file.toString());
        } catch (java.io.IOException e) {
            throw new CheckpointException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    /** The record as written: its fields and, first, the CRC32C of the same text ({@link JsonChecksum}). */
    String toJson() {
        return JsonChecksum.prepend(fieldsJson());
    }

    private String fieldsJson() {
        StringBuilder sb = new StringBuilder("{\n");
        sb.append("  \"format\": ").append(FORMAT).append(",\n");
        sb.append("  \"job_id\": ").append(JsonChecksum.quote(identity.idHex())).append(",\n");
        sb.append("  \"epoch\": ").append(identity.epoch()).append(",\n");
        sb.append("  \"state\": ").append(JsonChecksum.quote(state.name().toLowerCase(Locale.ROOT))).append(",\n");
        sb.append("  \"layout\": ").append(JsonChecksum.quote(layout)).append(",\n");
        sb.append("  \"microbatches\": ").append(microbatches).append(",\n");
        sb.append("  \"last_committed_step\": ").append(lastCommittedStep).append(",\n");
        sb.append("  \"last_checkpoint\": ").append(JsonChecksum.quote(lastCheckpoint)).append(",\n");
        sb.append("  \"submitter\": ").append(JsonChecksum.quote(submitter)).append(",\n");
        sb.append("  \"observer\": ").append(JsonChecksum.quote(observer)).append(",\n");
        sb.append("  \"restarts\": ").append(restarts()).append(",\n");
        sb.append("  \"spec\": {");
        RecordComponent[] cs = JobRequest.class.getRecordComponents();
        for (int i = 0; i < cs.length; i++) {
            Object v = value(cs[i], spec);
            sb.append(i == 0 ? "\n" : ",\n").append("    ").append(JsonChecksum.quote(cs[i].getName())).append(": ")
                .append(v instanceof String str ? JsonChecksum.quote(str) : String.valueOf(v));
        }
        sb.append("\n  },\n  \"faults\": [");
        for (int i = 0; i < faults.size(); i++) {
            Fault f = faults.get(i);
            sb.append(i == 0 ? "\n" : ",\n").append("    {\"epoch\": ").append(f.epoch()).append(", \"at_ms\": ")
                .append(f.atMs());
            if (f.step() >= 0) {
                sb.append(", \"step\": ").append(f.step());
            }
            sb.append(", \"reason\": ").append(JsonChecksum.quote(f.reason()));
            sb.append(f.planned() ? ", \"planned\": true}" : "}");
        }
        sb.append("\n  ]");
        if (!handover.isEmpty()) {  // written only while set: a record without one reads and checks as before
            sb.append(",\n  \"handover\": ").append(JsonChecksum.quote(handover));
        }
        sb.append("\n}\n");
        return sb.toString();
    }

    static JobRecord parse(String json, String where) {
        try {
            Config c = ConfigFactory.parseString(json);
            if (c.getInt("format") != FORMAT) {
                throw new CheckpointException(where + ": unsupported job record format " + c.getInt("format")
                    + " (this build reads " + FORMAT + ")");
            }
            JobIdentity id = new JobIdentity(JobIdentity.parseId(c.getString("job_id")), c.getLong("epoch"));
            Config s = c.getConfig("spec");
            RecordComponent[] cs = JobRequest.class.getRecordComponents();
            Object[] args = new Object[cs.length];
            Class<?>[] types = new Class<?>[cs.length];
            for (int i = 0; i < cs.length; i++) {
                types[i] = cs[i].getType();
                String n = cs[i].getName();
                args[i] = types[i] == int.class ? s.getInt(n) : types[i] == long.class ? s.getLong(n)
                    : types[i] == float.class ? (float) s.getDouble(n) : types[i] == boolean.class ? s.getBoolean(n)
                    : s.getString(n);
            }
            JobRequest spec = JobRequest.class.getDeclaredConstructor(types).newInstance(args);
            List<Fault> faults = new ArrayList<>();
            for (Config f : c.getConfigList("faults")) {
                faults.add(new Fault(f.getLong("epoch"), f.getLong("at_ms"), f.hasPath("step") ? f.getLong("step") : -1,
                    f.getString("reason"), f.hasPath("planned") && f.getBoolean("planned")));
            }
            JobRecord read = new JobRecord(id, State.valueOf(c.getString("state").toUpperCase(Locale.ROOT)), spec,
                c.getString("layout"), c.getInt("microbatches"), c.getLong("last_committed_step"),
                c.getString("last_checkpoint"), c.getString("submitter"),
                c.hasPath("observer") ? c.getString("observer") : "", faults,
                c.hasPath("handover") ? c.getString("handover") : "");
            JsonChecksum.check(c, read.fieldsJson(), where);
            return read;
        } catch (ConfigException | ReflectiveOperationException | IllegalArgumentException e) {
            throw new CheckpointException(where + ": unreadable job record: " + e.getMessage(), e);
        }
    }

    private static Object value(RecordComponent c, Object o) {
        try {
            return c.getAccessor().invoke(o);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException(e);
        }
    }

}
