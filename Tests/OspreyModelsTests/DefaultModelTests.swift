// Where commands find the shipped model when no --model is given (DefaultModel.swift): the
// environment variable, then beside/above the executable (links resolved), then above the current
// directory; a clear error naming the places otherwise.
import Foundation
import Testing
@testable import OspreyModels

@Suite struct DefaultModelTests {
    /// A fake checkout with the shipped folder (config.json only) and a built binary inside it.
    func checkout() throws -> (root: URL, binary: URL) {
        let root = temporaryFolder("default-model")
        let model = root.appendingPathComponent(DefaultModel.relativePath)
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: model.appendingPathComponent("config.json"))
        let bin = root.appendingPathComponent(".build/x86_64-unknown-linux-gnu/release")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        try Data().write(to: bin.appendingPathComponent("osprey"))
        return (root, bin.appendingPathComponent("osprey"))
    }

    @Test func findsTheFolderAboveTheExecutableFromAnyDirectory() throws {
        let (root, binary) = try checkout()
        let elsewhere = temporaryFolder("elsewhere")
        defer { cleanup(root); cleanup(elsewhere) }
        let found = try DefaultModel.locate(environment: [:], executable: binary, currentDirectory: elsewhere)
        #expect(found.standardizedFileURL == root.appendingPathComponent(DefaultModel.relativePath).standardizedFileURL)
        // Through a symbolic link to the binary (e.g. .build/release -> x86_64-unknown-linux-gnu/release).
        let link = elsewhere.appendingPathComponent("osprey")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: binary)
        #expect(try DefaultModel.locate(environment: [:], executable: link, currentDirectory: elsewhere).path.hasPrefix(root.resolvingSymlinksInPath().path))
    }

    @Test func findsTheFolderAboveTheCurrentDirectory() throws {
        let (root, _) = try checkout()
        defer { cleanup(root) }
        let deep = root.appendingPathComponent("Sources/osprey")
        try FileManager.default.createDirectory(at: deep, withIntermediateDirectories: true)
        let found = try DefaultModel.locate(environment: [:], executable: URL(fileURLWithPath: "/usr/local/bin/osprey"), currentDirectory: deep)
        #expect(found.standardizedFileURL == root.appendingPathComponent(DefaultModel.relativePath).standardizedFileURL)
    }

    @Test func environmentVariableWinsAndIsChecked() throws {
        let (root, binary) = try checkout()
        let other = temporaryFolder("env-model")
        defer { cleanup(root); cleanup(other) }
        let env = [DefaultModel.environmentVariable: other.path]
        #expect(throws: DefaultModelError.environmentFolderInvalid(variable: DefaultModel.environmentVariable, path: other.path)) {
            try DefaultModel.locate(environment: env, executable: binary, currentDirectory: root)
        }
        try Data("{}".utf8).write(to: other.appendingPathComponent("config.json"))
        #expect(try DefaultModel.locate(environment: env, executable: binary, currentDirectory: root) == URL(fileURLWithPath: other.path))
    }

    @Test func missingFolderIsAClearError() throws {
        let nowhere = temporaryFolder("no-model")
        defer { cleanup(nowhere) }
        do {
            _ = try DefaultModel.locate(environment: [:], executable: nil, currentDirectory: nowhere)
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains(DefaultModel.relativePath) && error.description.contains("--model DIR"))
            if case .notFound(let searched) = error { #expect(searched.first == nowhere.appendingPathComponent(DefaultModel.relativePath).path) }
        }
        #expect(try DefaultModel.folder(for: "/some/dir") == URL(fileURLWithPath: "/some/dir"))
    }
}
