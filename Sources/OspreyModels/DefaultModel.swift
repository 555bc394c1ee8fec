// The model folder commands load when no --model is given: Osprey's shipped toy gpt-oss, trained
// on tinyshakespeare by tools/train_tiny_gpt_oss.py and committed at Models/osprey-tiny-shakespeare.
// Where it is looked for, in order: the folder named by $OSPREY_DEFAULT_MODEL; `Models/...` in the
// executable's folder and each folder above it (so a binary built in the checkout's
// .build/<triple>/<config>/ finds the checkout, from any working directory, symbolic links
// resolved); then the same under the current directory and each folder above it. A folder counts
// when it holds config.json. Nothing is downloaded: a machine without network must run it.
import Foundation

/// Finds the shipped default model folder.
public enum DefaultModel {
    /// Where the folder sits in the repository.
    public static let relativePath = "Models/osprey-tiny-shakespeare"
    /// An environment variable that, when set, names the default model folder instead.
    public static let environmentVariable = "OSPREY_DEFAULT_MODEL"

    /// `option` as a folder URL when given (a --model value), else the shipped default folder.
    public static func folder(for option: String?) throws(DefaultModelError) -> URL {
        if let option { return URL(fileURLWithPath: option) }
        return try locate()
    }

    /// The shipped folder, searched as the file comment says; throws a message naming every place looked in.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment,
                              executable: URL? = Bundle.main.executableURL,
                              currentDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws(DefaultModelError) -> URL {
        if let named = environment[environmentVariable], !named.isEmpty {
            let url = URL(fileURLWithPath: named)
            guard isModelFolder(url) else { throw .environmentFolderInvalid(variable: environmentVariable, path: url.path) }
            return url
        }
        let places = candidates(executable: executable, currentDirectory: currentDirectory)
        guard let found = places.first(where: isModelFolder) else { throw .notFound(searched: places.map(\.path)) }
        return found
    }

    /// Every place `locate` tries after the environment variable, in order, without duplicates.
    public static func candidates(executable: URL?, currentDirectory: URL) -> [URL] {
        var roots: [URL] = []
        if let executable { roots += ancestors(of: executable.resolvingSymlinksInPath().deletingLastPathComponent()) }
        roots += ancestors(of: currentDirectory.standardizedFileURL)
        var seen = Set<String>()
        return roots.map { $0.appendingPathComponent(relativePath) }.filter { seen.insert($0.path).inserted }
    }

    private static func ancestors(of directory: URL) -> [URL] {
        var path = directory.path
        var out = [URL(fileURLWithPath: path)]
        while path != "/" && !path.isEmpty {
            path = (path as NSString).deletingLastPathComponent
            out.append(URL(fileURLWithPath: path.isEmpty ? "/" : path))
        }
        return out
    }

    private static func isModelFolder(_ url: URL) -> Bool {
        FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path)
    }
}

/// The default model folder could not be found.
public enum DefaultModelError: Error, CustomStringConvertible, Equatable, Sendable {
    case notFound(searched: [String])
    case environmentFolderInvalid(variable: String, path: String)

    public var description: String {
        switch self {
        case .notFound(let searched):
            "no --model given and the shipped model folder \(DefaultModel.relativePath) was not found "
                + "(looked in \(searched.count) places: \(searched.prefix(3).joined(separator: ", "))\(searched.count > 3 ? ", ..." : "")); "
                + "run from an Osprey checkout, set \(DefaultModel.environmentVariable), or pass --model DIR"
        case .environmentFolderInvalid(let variable, let path):
            "\(variable) names \(path), which is not a model folder (no config.json)"
        }
    }
}
