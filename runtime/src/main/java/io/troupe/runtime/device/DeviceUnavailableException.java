package io.troupe.runtime.device;

/** The requested device cannot be used here; the message says why (no GPU, no driver, backend missing). */
public final class DeviceUnavailableException extends RuntimeException {
    public DeviceUnavailableException(String message) {
        super(message);
    }
}
