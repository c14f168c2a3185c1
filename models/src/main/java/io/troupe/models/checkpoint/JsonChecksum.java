package io.troupe.models.checkpoint;

import com.typesafe.config.Config;
import java.nio.charset.StandardCharsets;
import java.util.zip.CRC32C;

/**
 * A CRC32C a JSON record carries of its own values: the record's text as written without the checksum line, which
 * a reader rebuilds from the values it parsed and checks. So a damaged value that still parses (a digit of a model
 * dimension, a step, a layout) is refused, not read as another record. A record without the field (written before
 * it existed) reads unchecked.
 */
public final class JsonChecksum {
    /** The field, written first in the object. */
    public static final String FIELD = "crc32c_of_values";

    private JsonChecksum() {
    }

    /** {@code body} (a JSON object, {@code "{\n"} first) with the checksum of that text as its first field. */
    public static String prepend(String body) {
        if (!body.startsWith("{\n")) {
            throw new IllegalArgumentException("not a JSON object starting '{\\n': " + body);
        }
        return "{\n  \"" + FIELD + "\": \"" + String.format("%08x", crc32c(body)) + "\",\n" + body.substring(2);
    }

    /**
     * Checks the checksum {@code read} carries (if any) against {@code canonicalBody}, the text its parsed values
     * write without the checksum; throws naming {@code where} when they differ.
     */
    public static void check(Config read, String canonicalBody, String where) {
        if (!read.hasPath(FIELD)) {
            return;
        }
        long stored;
        try {
            stored = Long.parseLong(read.getString(FIELD), 16);
        } catch (NumberFormatException e) {
            throw new CheckpointException(where + ": its " + FIELD + " '" + read.getString(FIELD)
                + "' is not a CRC32C in hex: the file is damaged", e);
        }
        long computed = crc32c(canonicalBody);
        if (stored != computed) {
            throw new CheckpointException(where + ": does not match its own CRC32C (stored " + String.format("%08x",
                stored) + ", its values give " + String.format("%08x", computed) + "): the file is damaged");
        }
    }

    private static long crc32c(String text) {
        CRC32C crc = new CRC32C();
        crc.update(text.getBytes(StandardCharsets.UTF_8));
        return crc.getValue();
    }

    /**
     * {@code s} as a JSON string, as every durable JSON record writes its strings (the manifest, the job record,
     * the run's data record): quotes, backslashes and control characters escaped, so the text reads back to the
     * same values and the checksum over it holds.
     */
    public static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                default -> {
                    if (ch < 0x20) {
                        sb.append(String.format(java.util.Locale.ROOT, "\\u%04x", (int) ch));
                    } else {
                        sb.append(ch);
                    }
                }
            }
        }
        return sb.append('"').toString();
    }
}
