package io.troupe.models.checkpoint;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigException;
import com.typesafe.config.ConfigFactory;
import io.troupe.models.gpt.GptConfig;
import io.troupe.models.parallel.Layout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The commit record of a checkpoint ({@code manifest.json}): written last, so a checkpoint without
 * one does not exist. It carries a CRC32C of its own values ({@link JsonChecksum}), so a damaged model dimension,
 * layout or step is refused rather than read as another checkpoint.
 *
 * @param step       optimizer updates completed; training resumes at this step
 * @param dataCursor the next step whose batch will be drawn (sampling is a pure function of it)
 * @param layout     the layout that wrote it, e.g. {@code 1x1x1}
 * @param files      each shard file with its size and CRC32C
 */
public record Manifest(int format, long step, long dataCursor, long seed, int batchSize, String layout,
                       GptConfig model, String dataSource, List<FileEntry> files) {
    public static final int FORMAT = 1;

    /** One shard file. */
    public record FileEntry(String name, long bytes, long crc32c) {
    }

    public Manifest withFiles(List<FileEntry> newFiles) {
        return new Manifest(format, step, dataCursor, seed, batchSize, layout, model, dataSource,
            List.copyOf(newFiles));
    }

    /**
     * The layout that wrote it, parsed as {@link Layout} writes it (virtual stages included); {@link #parse} refuses a
     * manifest whose layout does not parse, so on a manifest read back this does not throw.
     */
    public Layout parsedLayout() {
        return Layout.parseWritten(layout);
    }

    /** The manifest as written: its fields and, first, the CRC32C of the same text without that line. */
    String toJson() {
        return JsonChecksum.prepend(fieldsJson());
    }

    /** The fields as one JSON object, without the checksum: what {@link #toJson} checksums. */
    private String fieldsJson() {
        StringBuilder sb = new StringBuilder();
        sb.append("{\n");
        sb.append("  \"format\": ").append(format).append(",\n");
        sb.append("  \"step\": ").append(step).append(",\n");
        sb.append("  \"data_cursor\": ").append(dataCursor).append(",\n");
        sb.append("  \"seed\": ").append(seed).append(",\n");
        sb.append("  \"batch_size\": ").append(batchSize).append(",\n");
        sb.append("  \"layout\": ").append(JsonChecksum.quote(layout)).append(",\n");
        sb.append("  \"data_source\": ").append(JsonChecksum.quote(dataSource)).append(",\n");
        sb.append("  \"model\": {")
            .append("\"name\": ").append(JsonChecksum.quote(model.name()))
            .append(", \"vocab_size\": ").append(model.vocabSize())
            .append(", \"d_model\": ").append(model.dModel())
            .append(", \"n_layer\": ").append(model.nLayer())
            .append(", \"n_head\": ").append(model.nHead())
            .append(", \"seq_len\": ").append(model.seqLen())
            .append(", \"ln_eps\": ").append(String.format(Locale.ROOT, "%.9g", model.lnEps()))
            .append("},\n");
        sb.append("  \"files\": [");
        for (int i = 0; i < files.size(); i++) {
            FileEntry f = files.get(i);
            sb.append(i == 0 ? "\n" : ",\n");
            sb.append("    {\"name\": ").append(JsonChecksum.quote(f.name())).append(", \"bytes\": ").append(f.bytes())
                .append(", \"crc32c\": \"").append(String.format("%08x", f.crc32c())).append("\"}");
        }
        sb.append("\n  ]\n}\n");
        return sb.toString();
    }

    /**
     * Whether {@code name} names a file directly inside the checkpoint's directory: every writer's shard names are,
     * so a name with a separator, {@code .} or {@code ..} (which would read a file elsewhere) is a damaged manifest.
     */
    static boolean isPlainFileName(String name) {
        return !name.isEmpty() && !name.equals(".") && !name.equals("..") && name.indexOf('/') < 0
            && name.indexOf('\\') < 0 && name.indexOf('\0') < 0;
    }

    static Manifest parse(String json, String where) {
        try {
            Config c = ConfigFactory.parseString(json);
            int format = c.getInt("format");
            if (format != FORMAT) {
                throw new CheckpointException(where + ": unsupported manifest format " + format + " (this build reads "
                    + FORMAT + ")");
            }
            Config m = c.getConfig("model");
            GptConfig model = new GptConfig(m.getString("name"), m.getInt("vocab_size"), m.getInt("d_model"),
                m.getInt("n_layer"), m.getInt("n_head"), m.getInt("seq_len"), (float) m.getDouble("ln_eps"));
            List<FileEntry> files = new ArrayList<>();
            for (Config f : c.getConfigList("files")) {
                String name = f.getString("name");
                if (!isPlainFileName(name)) {
                    throw new CheckpointException(where + ": file name " + JsonChecksum.quote(name) + " is not a plain"
                        + " file name in the checkpoint's directory (a path, '.', '..' or empty): the manifest is"
                        + " damaged");
                }
                files.add(new FileEntry(name, f.getLong("bytes"), Long.parseLong(f.getString("crc32c"), 16)));
            }
            Manifest read = new Manifest(format, c.getLong("step"), c.getLong("data_cursor"), c.getLong("seed"),
                c.getInt("batch_size"), c.getString("layout"), model, c.getString("data_source"), files);
            JsonChecksum.check(c, read.fieldsJson(), where);
            read.parsedLayout();
            return read;
        } catch (ConfigException | IllegalArgumentException e) {
            throw new CheckpointException(where + ": unreadable manifest: " + e.getMessage(), e);
        }
    }

}
