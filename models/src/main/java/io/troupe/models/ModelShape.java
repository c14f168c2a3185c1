package io.troupe.models;

/**
 * What the runtime needs to know of any model's shape: the data's vocabulary and sequence length,
 * the width of the activations that travel between pipeline stages, and the number of layers that
 * stages split. A model's own config implements it (GPT's {@code GptConfig} does) and its
 * {@link StageModuleFactory} may read the rest of its config from the concrete type.
 */
public interface ModelShape {

    /** Preset or model name, for messages and checkpoints. */
    String name();

    /** V, token ids are in {@code [0, vocabSize)}. */
    int vocabSize();

    /** T, tokens per sequence. */
    int seqLen();

    /** C, the width of the activations a stage sends to the next: (rows, T, C). */
    int dModel();

    /** Layers (blocks) that pipeline stages split between them. */
    int nLayer();
}
