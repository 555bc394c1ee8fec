// Malformed safetensors files: each must be rejected with the right typed error naming the file
// (and tensor), never a crash. Files are built by hand because the writer cannot produce them.

import Foundation
import OspreyCore
import OspreyIO
import Testing

private func entry(_ dtype: String, _ shape: [Int], _ begin: Int, _ end: Int) -> String {
    "{\"dtype\":\"\(dtype)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(begin),\(end)]}"
}

@Suite struct SafetensorsValidationTests {
    @Test func missingFileAndFolderCannotBeOpened() throws {
        let dir = try scratchDirectory()
        for url in [dir.appendingPathComponent("absent.safetensors"), dir] {
            do { _ = try SafetensorsFile(url: url); Issue.record("\(url.path) opened") } catch let e as SafetensorsError {
                guard case .cannotOpen(url.path, _) = e else { Issue.record("got \(e)"); continue }
            }
        }
    }

    @Test func tooSmallFiles() throws {
        for n in 0..<8 {
            guard case .fileTooSmall(_, let size)? = try openError(Array(repeating: 0, count: n)) else {
                Issue.record("\(n)-byte file accepted or wrong error"); continue
            }
            #expect(size == n)
        }
    }

    @Test func hugeHeaderLengths() throws {
        for n: UInt64 in [100_000_001, 1 << 40, UInt64.max] {
            guard case .headerTooLarge(_, let length)? = try openError(safetensorsBytes(header: "{}", declaredLength: n)) else {
                Issue.record("header length \(n) not rejected as too large"); continue
            }
            #expect(length == n)
        }
    }

    @Test func headerLengthPastEndOfFile() throws {
        let error = try openError(safetensorsBytes(header: "{}", declaredLength: 3))
        guard case .headerPastEnd(_, 3, 10)? = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test func everyTruncationOfAValidFileIsRejected() throws {
        let dir = try scratchDirectory()
        let url = dir.appendingPathComponent("full.safetensors")
        try SafetensorsWriter.write(sampleTensors(), metadata: ["format": "pt"], to: url)
        let full = try [UInt8](Data(contentsOf: url))
        _ = try SafetensorsFile(url: url)
        for n in 0..<full.count {
            #expect(try openError(Array(full[0..<n])) != nil, "prefix of \(n) bytes accepted")
        }
    }

    @Test func headerNotUTF8() throws {
        let error = try openError(safetensorsBytes(headerBytes: Array("{\"a".utf8) + [0xFF, 0xFE] + Array("\":{}}".utf8)))
        guard case .headerNotUTF8? = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test(arguments: ["{\"a\":", "[]", "\"x\"", "{} x", "{}\0", "", "{\"a\":{\"dtype\":\"F32\",}}", "{'a':1}",
                      String(repeating: "[", count: 100_000), "{\"a\":\"\\ud800\"}"])
    func invalidJSON(header: String) throws {
        let error = try openError(safetensorsBytes(header: header))
        guard case .invalidJSON? = error else { Issue.record("header \(header.prefix(40)) gave \(String(describing: error))"); return }
    }

    @Test func unknownDType() throws {
        let error = try openError(safetensorsBytes(header: "{\"w\":\(entry("F17", [1], 0, 4))}", data: [0, 0, 0, 0]))
        guard case .unknownDType(_, "w", "F17")? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(error!.description.contains("'w'"))
    }

    @Test func shapeSizeMismatch() throws {
        let error = try openError(safetensorsBytes(header: "{\"w\":\(entry("F32", [2, 2], 0, 12))}", data: Array(repeating: 0, count: 12)))
        guard case .sizeMismatch(_, "w", [2, 2], "F32", 16, 12)? = error else { Issue.record("got \(String(describing: error))"); return }
    }

    @Test func shapeOverflow() throws {
        let big = 1 << 40
        let error = try openError(safetensorsBytes(header: "{\"w\":\(entry("F32", [big, big, big], 0, 0))}"))
        guard case .sizeMismatch(_, "w", _, _, nil, 0)? = error else { Issue.record("got \(String(describing: error))"); return }
        let huge = try openError(safetensorsBytes(header: "{\"w\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]}}"))
        guard case .invalidEntry(_, "w", _)? = huge else { Issue.record("got \(String(describing: huge))"); return }
    }

    @Test(arguments: ["[-1]", "[1.0]", "[1e0]", "[\"1\"]", "[null]", "3"])
    func badShape(shape: String) throws {
        let header = "{\"w\":{\"dtype\":\"U8\",\"shape\":\(shape),\"data_offsets\":[0,1]}}"
        guard case .invalidEntry(_, "w", _)? = try openError(safetensorsBytes(header: header, data: [0])) else {
            Issue.record("shape \(shape) accepted or wrong error"); return
        }
    }

    @Test(arguments: ["{\"shape\":[1],\"data_offsets\":[0,1]}", "{\"dtype\":\"U8\",\"data_offsets\":[0,1]}",
                      "{\"dtype\":\"U8\",\"shape\":[1]}", "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,1]}",
                      "{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}", "{\"dtype\":8,\"shape\":[1],\"data_offsets\":[0,1]}",
                      "{\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", "[1]"])
    func malformedEntry(body: String) throws {
        guard case .invalidEntry(_, "w", _)? = try openError(safetensorsBytes(header: "{\"w\":\(body)}", data: [0])) else {
            Issue.record("entry \(body) accepted or wrong error"); return
        }
    }

    @Test func subByteTensorMustFillWholeBytes() throws {
        guard case .invalidEntry(_, "q", _)? = try openError(safetensorsBytes(header: "{\"q\":\(entry("F4", [3], 0, 2))}", data: [0, 0])) else {
            Issue.record("3 F4 values accepted"); return
        }
        let ok = try writeScratchFile(safetensorsBytes(header: "{\"q\":\(entry("F4", [2, 4], 0, 4))}", data: [0x21, 0, 0, 0]))
        let t = try SafetensorsFile(url: ok).tensor("q")
        #expect(t.dtype == .e2m1 && t.shape == [2, 4] && t.float(at: 0) == 0.5 && t.float(at: 1) == 1)
    }

    @Test func offsetsOutOfRange() throws {
        let past = try openError(safetensorsBytes(header: "{\"w\":\(entry("U8", [4], 0, 4))}", data: [0, 0]))
        guard case .offsetsOutOfRange(_, "w", 0, 4, 2)? = past else { Issue.record("got \(String(describing: past))"); return }
        let reversed = try openError(safetensorsBytes(header: "{\"w\":\(entry("U8", [0], 2, 1))}", data: [0, 0]))
        guard case .offsetsOutOfRange(_, "w", 2, 1, 2)? = reversed else { Issue.record("got \(String(describing: reversed))"); return }
    }

    @Test func overlappingTensors() throws {
        let header = "{\"a\":\(entry("U8", [3], 0, 3)),\"b\":\(entry("U8", [2], 2, 4))}"
        let error = try openError(safetensorsBytes(header: header, data: [0, 0, 0, 0]))
        guard case .overlappingTensors(_, "b", "a")? = error else { Issue.record("got \(String(describing: error))"); return }
        let same = "{\"a\":\(entry("U8", [2], 0, 2)),\"b\":\(entry("U8", [2], 0, 2))}"
        guard case .overlappingTensors? = try openError(safetensorsBytes(header: same, data: [0, 0])) else {
            Issue.record("two tensors sharing bytes accepted"); return
        }
    }

    @Test func gapsAndTrailingBytesAreRejected() throws {
        let gap = "{\"a\":\(entry("U8", [1], 0, 1)),\"b\":\(entry("U8", [1], 2, 3))}"
        guard case .gapBeforeTensor(_, "b", 1, 2)? = try openError(safetensorsBytes(header: gap, data: [0, 0, 0])) else {
            Issue.record("gap accepted"); return
        }
        let trailing = try openError(safetensorsBytes(header: "{\"a\":\(entry("U8", [1], 0, 1))}", data: [0, 0]))
        guard case .trailingBytes(_, 1, 2)? = trailing else { Issue.record("got \(String(describing: trailing))"); return }
    }

    @Test func headerOrderMayDifferFromDataOrder() throws {
        let header = "{\"z\":\(entry("U8", [2], 1, 3)),\"e\":\(entry("U8", [0], 1, 1)),\"a\":\(entry("U8", [1], 0, 1))} "
        let file = try SafetensorsFile(url: try writeScratchFile(safetensorsBytes(header: header, data: [7, 8, 9])))
        #expect(file.tensorNames == ["z", "e", "a"])
        #expect(try file.tensor("z").floats() == [8, 9])
        #expect(file.info("a")?.fileRange == (8 + header.utf8.count)..<(9 + header.utf8.count))
    }

    @Test func duplicateTensorNames() throws {
        let header = "{\"a\":\(entry("U8", [1], 0, 1)),\"a\":\(entry("U8", [1], 1, 2))}"
        guard case .duplicateTensor(_, "a")? = try openError(safetensorsBytes(header: header, data: [0, 0])) else {
            Issue.record("duplicate accepted"); return
        }
    }

    @Test(arguments: ["{\"k\":1}", "[\"k\"]", "\"k\"", "{\"k\":null}", "{\"k\":\"a\",\"k\":\"b\"}"])
    func badMetadata(metadata: String) throws {
        guard case .invalidMetadata? = try openError(safetensorsBytes(header: "{\"__metadata__\":\(metadata)}")) else {
            Issue.record("metadata \(metadata) accepted"); return
        }
    }

    @Test func goodMetadataAndNullMetadata() throws {
        let file = try SafetensorsFile(url: try writeScratchFile(safetensorsBytes(header: "{\"__metadata__\":{\"format\":\"pt\",\"é\":\"\\u00e9\\n\"}}")))
        #expect(file.metadata == ["format": "pt", "é": "é\n"] && file.tensorNames.isEmpty)
        let none = try SafetensorsFile(url: try writeScratchFile(safetensorsBytes(header: "{\"__metadata__\":null}")))
        #expect(none.metadata.isEmpty)
    }

    @Test func unsupportedDTypeAndMissingTensor() throws {
        let header = "{\"d\":\(entry("F64", [1], 0, 8)),\"b\":\(entry("BOOL", [1], 8, 9))}"
        let file = try SafetensorsFile(url: try writeScratchFile(safetensorsBytes(header: header, data: Array(repeating: 1, count: 9))))
        #expect(file.info("d")?.dtype == .f64)
        do { _ = try file.tensor("d"); Issue.record("F64 tensor returned") } catch let e as SafetensorsError {
            guard case .unsupportedDType(_, "d", .f64) = e else { Issue.record("got \(e)"); return }
            #expect(e.description.contains("'d'") && e.description.contains("F64"))
        }
        #expect(try file.withRawBytes(of: "b") { Array($0) } == [1])
        do { _ = try file.tensor("nope"); Issue.record("missing tensor returned") } catch let e as SafetensorsError {
            guard case .tensorNotFound("nope", file.url.path) = e else { Issue.record("got \(e)"); return }
        }
    }

    @Test func misalignedDataIsCopiedNotMisread() throws {
        // Header of 21 bytes: the f32 data starts at file offset 29, not a multiple of 4.
        let header = "{\"w\":\(entry("F32", [2], 0, 8))}"
        let values: [Float] = [1.5, -2.25]
        let data = values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * $0)) } }
        let file = try SafetensorsFile(url: try writeScratchFile(safetensorsBytes(header: header, data: data)))
        #expect((8 + header.utf8.count) % 4 != 0)
        #expect(try file.tensor("w").floats() == values)
    }

    @Test func randomHeaderCorruptionNeverCrashes() throws {
        let dir = try scratchDirectory()
        let url = dir.appendingPathComponent("good.safetensors")
        try SafetensorsWriter.write(sampleTensors(), metadata: ["a": "b"], to: url)
        let good = try [UInt8](Data(contentsOf: url))
        let headerEnd = 8 + Int(good[0]) + Int(good[1]) << 8
        var rng = SeededRandom(state: 42)
        for trial in 0..<300 {
            var bytes = good
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            let corrupt = dir.appendingPathComponent("c\(trial).safetensors")
            try Data(bytes).write(to: corrupt)
            if let file = try? SafetensorsFile(url: corrupt) {
                for name in file.tensorNames { _ = try? file.tensor(name).floats() }
            }
        }
    }
}
