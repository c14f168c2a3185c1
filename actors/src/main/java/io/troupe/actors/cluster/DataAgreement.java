package io.troupe.actors.cluster;

import io.troupe.models.data.DataFingerprint;
import java.util.List;

/**
 * Whether an epoch's ranks train on the same bytes: a job's data path names a file or directory on every node, and
 * two hosts' copies may differ. Each rank reports the fingerprint of what it read ({@link DataFingerprint}: size and
 * SHA-256, sampled past 256 MiB) with its Ready; the coordinator compares them before the epoch's first step, with
 * one another and with the fingerprint the submitter computed when it read the data itself, and then with the data
 * the run trained on ({@link #differsFromRecord}: the {@code data.json} of a run it continues). Pure: one thread.
 */
final class DataAgreement {
    private DataAgreement() {
    }

    /**
     * The reason an epoch must not step, or null when its ranks agree.
     *
     * @param dataPath  the job's data path ("" for the built-in corpus), named in the reason
     * @param submitted the job request's fingerprint ({@link DataFingerprint#token()}), or "" when the submitter did
     *                  not read the data
     * @param reported  per rank, the fingerprint its Ready reported ("" when it did not say: not compared)
     * @param hosts     per rank, where it runs
     * @return one line naming the two ranks (or the rank and the submitter), their hosts and both fingerprints
     */
    static String disagreement(String dataPath, String submitted, String[] reported, List<String> hosts) {
        if (!submitted.isEmpty()) {
            DataFingerprint expected = DataFingerprint.fromToken(dataPath, submitted);
            for (int rank = 0; rank < reported.length; rank++) {
                if (!reported[rank].isEmpty() && !expected.sameData(read(dataPath, reported[rank]))) {
                    return "the data differs from the submitter's: rank " + rank + " on " + hosts.get(rank)
                        + " read " + read(dataPath, reported[rank]).describe() + ", the submitter read "
                        + expected.describe() + "; every node must hold the same bytes at the data path";
                }
            }
        }
        int first = -1;
        for (int rank = 0; rank < reported.length; rank++) {
            if (reported[rank].isEmpty()) {
                continue;
            }
            if (first < 0) {
                first = rank;
            } else if (!read(dataPath, reported[first]).sameData(read(dataPath, reported[rank]))) {
                return "the data differs between ranks: rank " + first + " on " + hosts.get(first) + " read "
                    + read(dataPath, reported[first]).describe() + ", rank " + rank + " on " + hosts.get(rank)
                    + " read " + read(dataPath, reported[rank]).describe()
                    + "; every node must hold the same bytes at the data path";
            }
        }
        return null;
    }

    /**
     * The data an epoch's ranks read, once {@link #disagreement} found them agreeing: the first rank's report, else the
     * submitter's fingerprint; null when neither says.
     *
     * @param dataPath  the job's data path ("" for the built-in corpus), the fingerprint's source
     * @param submitted as for {@link #disagreement}
     * @param reported  as for {@link #disagreement}
     */
    static DataFingerprint agreed(String dataPath, String submitted, String[] reported) {
        for (String r : reported) {
            if (!r.isEmpty()) {
                return read(dataPath, r);
            }
        }
        return submitted.isEmpty() ? null : read(dataPath, submitted);
    }

    /**
     * The reason an epoch must not step because its ranks read other data than the run trained on, or null.
     *
     * @param trainedOn what the run trained on
     * @param record    where that is recorded, as the reason names it ({@code the record DIR/data.json})
     * @param agreed    what the epoch's ranks read ({@link #agreed})
     * @return one line naming both fingerprints
     */
    static String differsFromRecord(DataFingerprint trainedOn, String record, DataFingerprint agreed) {
        if (trainedOn.sameData(agreed)) {
            return null;
        }
        return "the data differs from the data this run trained on: " + record + " says it trained on "
            + trainedOn.describe() + ", the ranks read " + agreed.describe() + "; continue it with the bytes it"
            + " trained on, or train on these in a new run directory";
    }

    private static DataFingerprint read(String dataPath, String token) {
        if (dataPath.isEmpty()) {
            return DataFingerprint.fromToken(DataFingerprint.builtIn().source(), token);
        }

        return DataFingerprint.fromToken(dataPath, token);
    }
}
