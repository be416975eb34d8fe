import Foundation
import HVCSystem
import VMM

/// The processes of a running container, as its own `ps` lists them (Docker's `top`): hvc sees
/// the guest's processes only from inside the VM, so the image needs `sh` and `ps`.
public struct ContainerTop: Equatable, Sendable {
    public var titles: [String]
    public var processes: [[String]]

    /// Most bytes of `ps` output read, and most arguments' bytes passed to it.
    static let maxOutput = 1 << 20
    static let maxArguments = 256

    /// `ps ARGUMENTS` in the container, less the line of that ps itself. A shell prints its own
    /// pid before it becomes ps (`exec`), which is how that line is known.
    public static func list(over channel: FrameChannel, _ record: ContainerRecord, psArguments: String) throws(HVCError) -> ContainerTop {
        let arguments = try split(psArguments)
        var output: [UInt8] = []
        var errors: [UInt8] = []
        let ending = ContainerProcess.run(over: channel, record, arguments: ["sh", "-c", "echo $$; exec ps \"$@\"", "ps"] + arguments,
                                          seconds: 30) { stream, bytes in
            if stream == 1 { output += bytes } else if errors.count < ContainerProcess.keptErrorBytes { errors += bytes }
            return output.count <= maxOutput
        }
        switch ending {
        case .exited(0): break
        case .exited(let code):
            throw HVCError(.invalid, "ps \(arguments.joined(separator: " ").prefix(64)) in container \(record.name) failed (\(code))"
                           + ContainerProcess.reason(errors) + ": give ps options it takes")
        case .notStarted(let why):
            throw HVCError(.runtime, "container \(record.name) cannot list its processes (\(why)): its image needs sh and ps")
        case .timedOut: throw HVCError(.runtime, "ps in container \(record.name) did not finish")
        case .lost(let why): throw HVCError(.conflict, "container \(record.name): \(why)")
        }
        return try parse(String(decoding: output, as: UTF8.self))
    }

    /// `ps_args` as words; no more than `maxArguments` bytes.
    static func split(_ text: String) throws(HVCError) -> [String] {
        guard text.utf8.count <= maxArguments, !text.contains("\0") else {
            throw HVCError(.invalid, "ps arguments are longer than \(maxArguments) bytes or hold a NUL: give ps fewer options")
        }
        return text.split(whereSeparator: \.isWhitespace).map(String.init)
    }

    /// The shell's pid line, ps's header and its rows: each row as many columns as the header,
    /// the last taking the rest of the line (a command's arguments), as Docker parses ps.
    static func parse(_ output: String) throws(HVCError) -> ContainerTop {
        var lines = output.split(separator: "\n").map { String($0).sanitizedGuestText }
        guard lines.count >= 2, let own = Int(lines.removeFirst().trimmingCharacters(in: .whitespaces)) else {
            throw HVCError(.runtime, "ps in the container printed no header")
        }
        let titles = lines.removeFirst().split(whereSeparator: \.isWhitespace).map(String.init)
        guard !titles.isEmpty else { throw HVCError(.runtime, "ps in the container printed no header") }
        let pidColumn = titles.firstIndex(of: "PID")
        var processes: [[String]] = []
        for line in lines {
            var fields = line.split(whereSeparator: \.isWhitespace).map(String.init)
            guard !fields.isEmpty else { continue }
            if fields.count > titles.count {
                let rest = fields[(titles.count - 1)...].joined(separator: " ")
                fields = Array(fields[..<(titles.count - 1)]) + [rest]
            }
            while fields.count < titles.count { fields.append("") }
            if let pidColumn, Int(fields[pidColumn]) == own { continue }
            processes.append(fields)
        }
        return ContainerTop(titles: titles, processes: processes)
    }
}
