// WebSocket close codes of wire protocol v1.1 (docs/protocol.md 5.2) and what the client does after
// each. Every close the server makes carries an error code (ErrorCodes) as its reason. The server sends
// only codes every target client can receive: Mono's ClientWebSocket (Unity) aborts on 1012-1014
// without completing the close handshake, so "try again later" is the application code 4013 (it was
// 1013 before v1.1). Plain C#, no UnityEngine.
using System;

namespace VrRecognition.Core
{
    public static class CloseCodes
    {
        /// <summary>Normal close; the server sends it only in answer to the client's own close.</summary>
        public const int Normal = 1000;
        /// <summary>The server is stopping (reason shutting_down, after a fatal error shutting_down):
        /// reconnect with backoff (another replica, or this one after its restart).</summary>
        public const int GoingAway = 1001;
        /// <summary>No common protocol version (reason unsupported_version): the client gives up, since
        /// the same hello would be refused again.</summary>
        public const int ProtocolError = 1002;
        /// <summary>A text message that is not valid UTF-8 (reason bad_json).</summary>
        public const int InvalidData = 1007;
        /// <summary>No hello in time (hello_required), or a client that did not read (slow_consumer).</summary>
        public const int PolicyViolation = 1008;
        /// <summary>A message over limits.max_message_bytes (reason message_too_large).</summary>
        public const int MessageTooBig = 1009;
        /// <summary>A server fault (reason internal_error).</summary>
        public const int InternalError = 1011;
        /// <summary>Refused at hello (too_many_streams, or shutting_down when the server began to stop
        /// after the upgrade): reconnect with backoff.</summary>
        public const int TryAgainLater = 4013;

        /// <summary>Every code the server sends, in the order of docs/protocol.md 5.2.</summary>
        public static readonly int[] SentByServer = { GoingAway, ProtocolError, InvalidData, PolicyViolation, MessageTooBig, InternalError, TryAgainLater };

        /// <summary>The close reasons (error codes) the server gives with each code; empty for codes it
        /// does not send.</summary>
        public static string[] Reasons(int code)
        {
            switch (code)
            {
                case GoingAway: return new[] { ErrorCodes.ShuttingDown };
                case ProtocolError: return new[] { ErrorCodes.UnsupportedVersion };
                case InvalidData: return new[] { ErrorCodes.BadJson };
                case PolicyViolation: return new[] { ErrorCodes.HelloRequired, ErrorCodes.SlowConsumer };
                case MessageTooBig: return new[] { ErrorCodes.MessageTooLarge };
                case InternalError: return new[] { ErrorCodes.InternalError };
                case TryAgainLater: return new[] { ErrorCodes.TooManyStreams, ErrorCodes.ShuttingDown };
                default: return new string[0];
            }
        }

        /// <summary>Whether the client connects again (after its backoff delay) when a connection ends
        /// with this code; null = no close frame (refused upgrade, lost network, timeout). Everything but
        /// 1002 is worth another try: 1001 and 4013 say so explicitly; 1007/1009 were one bad message,
        /// 1008 a stall, 1011 a server fault. A 1002 would only repeat.</summary>
        public static bool Reconnects(int? code)
        {
            return code != ProtocolError;
        }

        /// <summary>A close that says this client sent something wrong (docs/protocol.md 5.2: "fix the
        /// client" / "send smaller frames"): 1007, 1009, and 1008 hello_required. RecognitionClient still
        /// reconnects after one (a stalled network also misses the hello timeout), but its backoff keeps
        /// growing across such closes instead of restarting, so a client bug costs one attempt per
        /// Backoff.Max, not a tight loop.</summary>
        public static bool IsClientFault(int? code, string reason)
        {
            return code == InvalidData || code == MessageTooBig || (code == PolicyViolation && reason == ErrorCodes.HelloRequired);
        }

        /// <summary>A short name for logs: "4013 try_again_later".</summary>
        public static string Describe(int code)
        {
            switch (code)
            {
                case Normal: return "1000 normal";
                case GoingAway: return "1001 going_away";
                case ProtocolError: return "1002 protocol_error";
                case InvalidData: return "1007 invalid_data";
                case PolicyViolation: return "1008 policy_violation";
                case MessageTooBig: return "1009 message_too_big";
                case InternalError: return "1011 internal_error";
                case TryAgainLater: return "4013 try_again_later";
                default: return code.ToString();
            }
        }
    }
}
