package io.troupe.actors.schedule;

/**
 * The shape of one pipeline step: {@code p} ranks, {@code v} virtual stages per rank, {@code m}
 * micro-batches. Model stages are numbered {@code g = virtualStage * p + rank} (Megatron's interleaved
 * placement): with p=4, v=2 rank 1 holds model stages 1 and 5.
 *
 * @param stages        p, the number of pipeline ranks
 * @param virtualStages v, model chunks per rank (1 without interleaving)
 * @param microbatches  m, micro-batches per step
 */
public record PipelineShape(int stages, int virtualStages, int microbatches) {
    public PipelineShape {
        if (stages < 1) {
            throw new IllegalArgumentException("pipeline stages must be >= 1: stages=" + stages);
        }
        if (virtualStages < 1) {
            throw new IllegalArgumentException("virtual stages must be >= 1: virtualStages=" + virtualStages);
        }
        if (microbatches < 1) {
            throw new IllegalArgumentException("micro-batches must be >= 1: microbatches=" + microbatches);
        }
    }

    public static PipelineShape of(int stages, int microbatches) {
        return new PipelineShape(stages, 1, microbatches);
    }

    /** Number of model stages, p * v. */
    public int modelStages() {
        return stages * virtualStages;
    }

    /** Model stage of {@code (rank, virtualStage)}. */
    public int modelStage(int rank, int virtualStage) {
        return virtualStage * stages + rank;
    }

    public int rankOf(int modelStage) {
        return modelStage % stages;
    }

    public int virtualStageOf(int modelStage) {
        return modelStage / stages;
    }

    public boolean isFirstModelStage(int rank, int virtualStage) {
        return rank == 0 && virtualStage == 0;
    }

    public boolean isLastModelStage(int rank, int virtualStage) {
        return modelStage(rank, virtualStage) == modelStages() - 1;
    }
}
