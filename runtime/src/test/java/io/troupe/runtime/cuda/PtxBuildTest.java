package io.troupe.runtime.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Runs wherever nvcc is installed, GPU or not: the build put PTX for compute 8.0 and 9.0 of every
 * .cu file on the class path, it names every kernel the Java side launches, and ptxas accepts it for
 * sm_80 and sm_90. Skipped, with the reason, where nvcc is absent.
 */
@Timeout(120)
class PtxBuildTest {
    /** Every kernel CudaDevice, CudaGemm, CudaAttention, CudaFusedOps and CudaDecodeOps launch, by module. */
    static final String[][] KERNELS = {
        {"kernels", "axpy_f32", "scale_f32", "add_f32", "f32_to_bf16", "bf16_to_f32", "sumsq_partial", "sumsq_final",
            "bias_add", "bias_backward", "gelu_fwd", "gelu_bwd", "layernorm_fwd", "layernorm_bwd_dinp",
            "layernorm_bwd_params", "cross_entropy_fwd", "cross_entropy_bwd", "embedding_fwd", "embedding_bwd_sorted",
            "adamw_f32"},
        {"gemm", "sgemm_nn", "sgemm_nt", "sgemm_tn", "sgemm_tt", "tf32_nn", "tf32_nt", "tf32_tn", "tf32_tt",
            "bf16_nn", "bf16_nt", "bf16_tn", "bf16_tt", "tf32v_nn", "tf32v_nt", "tf32v_tn", "tf32v_tt", "bf16v_nn",
            "bf16v_nt", "bf16v_tn", "bf16v_tt"},
        {"attention", "attn_fwd_simple", "attn_fwd_flash", "attn_probs_from_lse", "attn_bwd_dq", "attn_bwd_dkv"},
        {"fused", "bias_gelu_fwd", "gelu_bwd_bias_partial", "col_partials_reduce", "residual_layernorm_fwd",
            "residual_layernorm_bwd"},
        {"decode", "paged_kv_write", "paged_attention"},
    };

    static Path nvcc() {
        String prop = System.getProperty("troupe.nvcc");
        Path p = Path.of(prop != null ? prop : "/usr/local/bin/nvcc");
        return Files.isExecutable(p) ? p : null;
    }

    static Path ptxas(Path nvcc) {
        Path beside = nvcc.resolveSibling("ptxas");
        return Files.isExecutable(beside) ? beside : Path.of("ptxas");
    }

    @Test
    void shouldShipPtxForEveryKernelAndArchitecture() {
        assumeTrue(nvcc() != null, "nvcc not installed here (looked at /usr/local/bin/nvcc and -Dtroupe.nvcc): "
            + "PTX is not built, CUDA kernels unchecked");
        assertEquals(CudaModules.MODULE_NAMES.length, KERNELS.length);
        for (String[] module : KERNELS) {
            for (String arch : new String[] {"80", "90"}) {
                String ptx = CudaModules.readPtx(module[0] + "_sm" + arch + ".ptx");
                assertTrue(ptx.contains(".target sm_" + arch), module[0] + " PTX targets sm_" + arch);
                for (int i = 1; i < module.length; i++) {
                    assertTrue(ptx.contains(".entry " + module[i] + "("), module[0] + "_sm" + arch
                        + ".ptx lacks kernel "
                        + module[i]);
                }
            }
        }
    }

    @Test
    void shouldBeAcceptedByPtxasForSm80AndSm90() throws IOException, InterruptedException {
        Path nvcc = nvcc();
        assumeTrue(nvcc != null, "nvcc not installed here: ptxas check skipped");
        Path dir = Files.createTempDirectory("troupe-ptx");
        try {
            // All of them at once, at -O0: acceptance (syntax, targets, resources) is the question here; the
            // build's build-ptx.sh already ran the optimising ptxas on the same files.
            List<String> names = new ArrayList<>();
            List<Process> procs = new ArrayList<>();
            for (String module : CudaModules.MODULE_NAMES) {
                for (String arch : new String[] {"80", "90"}) {
                    String name = module + "_sm" + arch;
                    Path ptx = dir.resolve(name + ".ptx");
                    Files.writeString(ptx, CudaModules.readPtx(name + ".ptx"), StandardCharsets.US_ASCII);
                    names.add(name);
                    procs.add(new ProcessBuilder(ptxas(nvcc).toString(), "-O0", "-arch=sm_" + arch, "-o",
                        dir.resolve(name + ".cubin").toString(), ptx.toString())
                        .redirectErrorStream(true).redirectOutput(dir.resolve(name + ".log").toFile()).start());
                }
            }
            List<String> report = new ArrayList<>();
            for (int i = 0; i < procs.size(); i++) {
                Process p = procs.get(i);
                String name = names.get(i);
                assertTrue(p.waitFor(90, TimeUnit.SECONDS), "ptxas timed out on " + name);
                assertEquals(0, p.exitValue(), "ptxas rejected " + name + ".ptx:\n"
                    + Files.readString(dir.resolve(name + ".log")));
                long cubinBytes = Files.size(dir.resolve(name + ".cubin"));
                assertTrue(cubinBytes > 0, name + ".cubin is empty");
                report.add(name + " -> " + cubinBytes + " bytes");
            }
            System.out.println("ptxas accepted: " + report);
        } finally {
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(q -> q.toFile().delete());
            }
        }
    }
}
