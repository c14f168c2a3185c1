package io.troupe.runtime.cuda;

/** A CUDA driver call failed: names the operation, the call and the driver's result code. */
public final class CudaException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int resultCode;

    public CudaException(String message, int resultCode) {
        super(message);
        this.resultCode = resultCode;
    }

    /** The {@code CUresult} code, e.g. 2 for CUDA_ERROR_OUT_OF_MEMORY. */
    public int resultCode() {
        return resultCode;
    }
}
