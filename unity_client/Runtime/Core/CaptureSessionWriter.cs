// Writes labelled frames as a capture session (docs/capture-format.md, version 1), the format train-vr
// reads: session.json up front, then per frame a JPEG under frames/ and one line in frames.jsonl,
// flushed at once so a crash loses at most the frame in flight. Records are checked before they are
// written, like training/capture_format.py's SessionWriter. Thread-safe. Plain C#, no UnityEngine.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Text;

namespace VrRecognition.Core
{
    public sealed class CaptureSessionInfo
    {
        /// <summary>Producer and version, e.g. "unity-recorder 0.1.0 (Quest 3)".</summary>
        public string Source = "unity-recorder " + RecognitionClient.Version;
        public int Width, Height;
        /// <summary>Vertical field of view in degrees (Unity: Camera.fieldOfView).</summary>
        public double VerticalFovDeg;
        public string[] Classes = new string[0];
        public string Notes = "";
        /// <summary>UTC start time; default: when the writer is created.</summary>
        public DateTime? CreatedUtc;
        /// <summary>Free-form data for programs, written as the "extra" object.</summary>
        public JsonObject Extra;
    }

    public sealed class CaptureFormatException : Exception
    {
        public CaptureFormatException(string message) : base(message) { }
    }

    public sealed class CaptureSessionWriter : IDisposable
    {
        public const string FormatName = "vr-capture-session";
        public const int FormatVersion = 1;
        const double QuaternionNormTolerance = 1e-3;

        static readonly UTF8Encoding Utf8NoBom = new UTF8Encoding(false);
        readonly object gate = new object();
        readonly HashSet<string> classes;
        readonly HashSet<string> images = new HashSet<string>(StringComparer.Ordinal);
        StreamWriter frames;
        int nextIndex;

        public string SessionDirectory { get; private set; }
        public CaptureSessionInfo Info { get; private set; }
        public int FrameCount { get { lock (gate) return images.Count; } }
        public DateTime CreatedUtc { get; private set; }

        /// <summary>Creates the folder and session.json; refuses a folder that already holds a session.</summary>
        public CaptureSessionWriter(string sessionDirectory, CaptureSessionInfo info)
        {
            if (info == null) throw new ArgumentNullException("info");
            if (info.Width <= 0 || info.Height <= 0) throw new CaptureFormatException("image size must be positive");
            if (!(info.VerticalFovDeg > 0 && info.VerticalFovDeg < 180)) throw new CaptureFormatException("vertical_fov_deg must be in (0, 180)");
            if (info.Classes == null || info.Classes.Length == 0) throw new CaptureFormatException("classes must be a non-empty list");
            classes = new HashSet<string>(StringComparer.Ordinal);
            foreach (var name in info.Classes)
            {
                if (string.IsNullOrEmpty(name)) throw new CaptureFormatException("class names must be non-empty");
                if (!classes.Add(name)) throw new CaptureFormatException("classes has the duplicate '" + name + "'");
            }
            SessionDirectory = sessionDirectory;
            Info = info;
            CreatedUtc = info.CreatedUtc ?? DateTime.UtcNow;
            Directory.CreateDirectory(sessionDirectory);
            string framesPath = Path.Combine(sessionDirectory, "frames.jsonl");
            if (File.Exists(framesPath)) throw new CaptureFormatException(framesPath + ": session already exists; write to a new folder");

            var classList = new List<JsonValue>();
            foreach (var name in info.Classes) classList.Add(JsonValue.Of(name));
            var header = new JsonObject()
                .Set("format", FormatName)
                .Set("version", FormatVersion)
                .Set("source", info.Source ?? "unity-recorder")
                .Set("created", CreatedUtc.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture))
                .Set("image", new JsonObject().Set("width", info.Width).Set("height", info.Height))
                .Set("camera", new JsonObject().Set("vertical_fov_deg", info.VerticalFovDeg))
                .Set("classes", JsonValue.Of(classList))
                .Set("notes", info.Notes ?? "")
                .Set("extra", info.Extra ?? new JsonObject());
            File.WriteAllText(Path.Combine(sessionDirectory, "session.json"), JsonWriter.Write(header) + "\n", Utf8NoBom);
            frames = new StreamWriter(new FileStream(framesPath, FileMode.CreateNew, FileAccess.Write, FileShare.Read), Utf8NoBom);
            frames.NewLine = "\n";
        }

        /// <summary>Conventional relative image path for the index-th frame: frames/000123.jpg.</summary>
        public static string FrameImageName(int index)
        {
            return "frames/" + index.ToString("000000", CultureInfo.InvariantCulture) + ".jpg";
        }

        /// <summary>Seconds since the session's created time, for timestamp_s.</summary>
        public double SecondsSinceCreated(DateTime utcNow) { return Math.Max(0, (utcNow - CreatedUtc).TotalSeconds); }

        /// <summary>Writes jpeg[0..jpegLength) as the next frames/NNNNNN.jpg and appends its record.
        /// Returns the image's relative path. `split` is "train", "val" or null.</summary>
        public string AddFrame(byte[] jpeg, int jpegLength, string label, double timestampS, Pose? pose = null,
            Gaze? gaze = null, string split = null)
        {
            if (jpeg == null || jpegLength <= 0 || jpegLength > jpeg.Length) throw new ArgumentException("need the JPEG bytes");
            if (label == null || !classes.Contains(label))
                throw new CaptureFormatException("label '" + label + "' is not one of the session's classes");
            if (double.IsNaN(timestampS) || double.IsInfinity(timestampS) || timestampS < 0)
                throw new CaptureFormatException("timestamp_s must be a finite number >= 0");
            if (split != null && split != "train" && split != "val") throw new CaptureFormatException("split must be train, val or null");
            if (pose.HasValue)
            {
                var p = pose.Value;
                if (!p.IsFinite) throw new CaptureFormatException("pose must be finite");
                double norm = Math.Sqrt((double)p.RotationX * p.RotationX + (double)p.RotationY * p.RotationY
                    + (double)p.RotationZ * p.RotationZ + (double)p.RotationW * p.RotationW);
                if (Math.Abs(norm - 1.0) > QuaternionNormTolerance) throw new CaptureFormatException("pose.rotation must be a unit quaternion, norm " + norm);
            }
            if (gaze.HasValue && !(gaze.Value.U >= 0 && gaze.Value.U <= 1 && gaze.Value.V >= 0 && gaze.Value.V <= 1))
                throw new CaptureFormatException("gaze must lie in [0, 1] x [0, 1]");
            lock (gate)
            {
                if (frames == null) throw new ObjectDisposedException("CaptureSessionWriter");
                string image = FrameImageName(nextIndex++);
                string path = Path.Combine(SessionDirectory, image.Replace('/', Path.DirectorySeparatorChar));
                Directory.CreateDirectory(Path.GetDirectoryName(path));
                using (var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write)) file.Write(jpeg, 0, jpegLength);
                images.Add(image);
                var sb = new StringBuilder(256);
                sb.Append("{\"image\":");
                JsonWriter.WriteString(sb, image);
                sb.Append(",\"label\":");
                JsonWriter.WriteString(sb, label);
                sb.Append(",\"timestamp_s\":").Append(JsonWriter.FormatDouble(timestampS));
                if (split != null) { sb.Append(",\"split\":"); JsonWriter.WriteString(sb, split); }
                if (pose.HasValue)
                {
                    var p = pose.Value;
                    sb.Append(",\"pose\":{\"position\":[").Append(F(p.PositionX)).Append(',').Append(F(p.PositionY)).Append(',').Append(F(p.PositionZ))
                      .Append("],\"rotation\":[").Append(F(p.RotationX)).Append(',').Append(F(p.RotationY)).Append(',').Append(F(p.RotationZ))
                      .Append(',').Append(F(p.RotationW)).Append("]}");
                }
                if (gaze.HasValue) sb.Append(",\"gaze\":[").Append(F(gaze.Value.U)).Append(',').Append(F(gaze.Value.V)).Append(']');
                sb.Append('}');
                frames.WriteLine(sb.ToString());
                frames.Flush();
                return image;
            }
        }

        static string F(float value) { return JsonWriter.FormatFloat(value); }

        public void Dispose()
        {
            lock (gate)
            {
                if (frames != null) { frames.Dispose(); frames = null; }
            }
        }
    }
}
