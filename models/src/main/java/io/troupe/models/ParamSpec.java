package io.troupe.models;

/**
 * One named parameter tensor inside a flat parameter buffer.
 *
 * @param globalOffset element offset in the whole (unsplit) model's buffer; fixes initialisation
 *                     and checkpoint identity whatever the layout
 * @param localOffset  element offset in the owning stage's buffer
 * @param decay        whether AdamW applies weight decay (dim >= 2 tensors)
 */
public record ParamSpec(String name, int[] shape, long globalOffset, long localOffset, long numel,
                        double initCenter, double initHalfwidth, boolean decay) {
}
