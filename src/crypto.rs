//! Per-device encryption (placeholder; being written).
