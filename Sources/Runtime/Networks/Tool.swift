import Foundation
import Synchronization

/// A helper program run to completion: the CNI plugins, nft, tc.
struct ToolRun {
    var status: Int32
    var output: Data
    var errorOutput: String

    var succeeded: Bool { status == 0 }

    /// Runs `path` with `input` on its stdin; `environment` replaces the inherited one when given.
    static func run(_ path: String, _ arguments: [String], environment: [String: String]? = nil, input: Data = Data()) -> ToolRun {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        do { try process.run() } catch { return ToolRun(status: 127, output: Data(), errorOutput: "\(path): \(error)") }
        // stderr drains on its own thread, so that neither pipe can fill and stall the tool.
        let errorData = Mutex<Data>(Data())
        let drained = DispatchSemaphore(value: 0)
        let errorHandle = stderr.fileHandleForReading
        Thread.detachNewThread {
            let data = errorHandle.readDataToEndOfFile()
            errorData.withLock { $0 = data }
            drained.signal()
        }
        try? stdin.fileHandleForWriting.write(contentsOf: input)
        try? stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        drained.wait()
        process.waitUntilExit()
        let errorText = String(decoding: errorData.withLock { $0 }, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return ToolRun(status: process.terminationStatus, output: output, errorOutput: errorText)
    }

    /// The tool's complaint in one line, for an error message.
    var complaint: String {
        let text = errorOutput.isEmpty ? String(decoding: output, as: UTF8.self) : errorOutput
        return text.split(separator: "\n").last.map(String.init) ?? "exit status \(status)"
    }
}
