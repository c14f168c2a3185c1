package io.troupe.actors.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.troupe.models.data.DataFingerprint;
import org.junit.jupiter.api.Test;

/** The data an epoch's ranks agreed on, and its comparison with the data the run trained on. */
class DataAgreementTest {
    private static final String A = "sha256:16000:" + "a".repeat(64);
    private static final String B = "sha256:16000:" + "b".repeat(64);

    @Test
    void shouldTakeTheRanksReportElseTheSubmittersElseNone() {
        assertEquals(DataFingerprint.fromToken("/d/x.txt", A),
            DataAgreement.agreed("/d/x.txt", B, new String[] {"", A, A}), "the ranks' bytes, not the submitter's");
        assertEquals(DataFingerprint.fromToken("/d/x.txt", B), DataAgreement.agreed("/d/x.txt", B, new String[] {""}));
        assertNull(DataAgreement.agreed("/d/x.txt", "", new String[] {"", ""}));
        assertEquals(DataFingerprint.builtIn(),
            DataAgreement.agreed("", "", new String[] {DataFingerprint.builtIn().token()}), "recorded as built-in");
    }

    @Test
    void shouldAcceptTheSameBytesAtAnyPathAndNameBothFingerprintsOtherwise() {
        DataFingerprint trained = DataFingerprint.fromToken("/old/x.txt", A);
        assertNull(DataAgreement.differsFromRecord(trained, "the record r", DataFingerprint.fromToken("/new/y.txt",
            A)));
        DataFingerprint other = DataFingerprint.fromToken("/old/x.txt", B);
        String why = DataAgreement.differsFromRecord(trained, "the record /runs/a/checkpoints/data.json", other);
        assertEquals("the data differs from the data this run trained on: the record /runs/a/checkpoints/data.json"
            + " says it trained on /old/x.txt (16000 bytes, sha256 aaaaaaaaaaaa), the ranks read /old/x.txt (16000"
            + " bytes, sha256 bbbbbbbbbbbb); continue it with the bytes it trained on, or train on these in a new run"
            + " directory", why);
        assertTrue(why.lines().count() == 1, why);
    }
}
