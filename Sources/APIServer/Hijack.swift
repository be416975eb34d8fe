import CLinux
import Foundation
import HVCSystem
import NIOCore
import NIOPosix

/// A connection taken over after its response head (Docker's attach and exec start): the
/// client's bytes go to one end of a socket pair, the other end's to the client, both ways
/// with back-pressure and half-closes (the client's end of input reaches the service as end
/// of file). The service works the pair's other end with blocking reads and writes, on a
/// thread of its own.
enum Hijack {
    /// Writes `head` and joins `channel` to a new socket pair whose other end `service` gets.
    /// Runs on `channel`'s event loop. Nothing of HTTP reads or writes on the connection after:
    /// the joining handler goes first in its pipeline, so bytes pass no HTTP handler.
    static func start(_ channel: Channel, head: String, service: @escaping @Sendable (HVCSystem.FileDescriptor) -> Void) {
        var fds: [Int32] = [-1, -1]
        guard hvc_socketpair(&fds) == 0 else {
            channel.close(promise: nil)
            return
        }
        let serviceEnd = HVCSystem.FileDescriptor(fds[1])
        let clientSide = Joint(preface: head)
        let serviceSide = Joint(preface: nil)
        clientSide.partner = serviceSide
        serviceSide.partner = clientSide
        let loop = channel.eventLoop
        ClientBootstrap(group: loop)
            .channelOption(.allowRemoteHalfClosure, value: true)
            .channelInitializer { pair in
                pair.eventLoop.makeCompletedFuture { try pair.pipeline.syncOperations.addHandler(serviceSide) }
            }
            .withConnectedSocket(fds[0])
            .whenComplete { result in
                guard case .success = result else {
                    channel.close(promise: nil)
                    return
                }
                do {
                    try channel.syncOptions?.setOption(.allowRemoteHalfClosure, value: true)
                    try channel.pipeline.syncOperations.addHandler(clientSide, position: .first)
                } catch {
                    channel.close(promise: nil)
                    return
                }
                Thread.detachNewThread {
                    service(serviceEnd)
                    _ = shutdown(serviceEnd.raw, Int32(SHUT_RDWR))
                }
            }
    }

    /// One side of the join: what it reads it hands to its partner's channel; its own channel
    /// reads only while the partner's takes more.
    final class Joint: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
        // @unchecked: both channels are on one event loop, and all state is touched there.
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        var partner: Joint?
        private var context: ChannelHandlerContext?
        private var preface: String?
        private var readWanted = false
        /// This side is the client's connection (it writes the response head).
        let facesClient: Bool

        init(preface: String?) {
            self.preface = preface
            facesClient = preface != nil
        }

        func handlerAdded(context: ChannelHandlerContext) {
            self.context = context
            if let preface {
                self.preface = nil
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: preface)), promise: nil)
            }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            self.context = nil
            partner = nil
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            partner?.context?.write(data, promise: nil)
        }

        func channelReadComplete(context: ChannelHandlerContext) {
            partner?.context?.flush()
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard let event = event as? ChannelEvent, event == .inputClosed else { return }
            // The client's end of input reaches the service as end of file; the service's end
            // of output ends the client's connection, once what is written has gone.
            if facesClient {
                partner?.context?.close(mode: .output, promise: nil)
            } else {
                partner?.finish()
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            partner?.finish()
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            context.close(promise: nil)
        }

        func channelWritabilityChanged(context: ChannelHandlerContext) {
            if context.channel.isWritable { partner?.resumeReading() }
        }

        func read(context: ChannelHandlerContext) {
            // Without a partner, what comes is dropped: bytes left unread would make closing
            // the connection a reset, which the client reads as an error.
            if partner?.context?.channel.isWritable ?? true {
                context.read()
            } else {
                readWanted = true
            }
        }

        private func resumeReading() {
            guard readWanted, let context else { return }
            readWanted = false
            context.read()
        }

        /// Closes this side once what was written to it has gone.
        private func finish() {
            guard let context else { return }
            context.writeAndFlush(wrapOutboundOut(ByteBuffer())).whenComplete { _ in context.close(promise: nil) }
        }
    }
}
