// swift-tools-version:5.5
// CNoxy: libnoxy's C API (include/noxy.h) as a Swift module. `import CNoxy` in any Swift
// program on Linux or macOS; the library is found through pkg-config (`noxy.pc`, which
// `make lib` writes to target/release/pkgconfig). See README.md.
import PackageDescription

let package = Package(
    name: "CNoxy",
    products: [
        .library(name: "CNoxy", targets: ["CNoxy"]),
    ],
    targets: [
        .systemLibrary(
            name: "CNoxy",
            path: "Sources/CNoxy",
            pkgConfig: "noxy"
        ),
    ]
)
