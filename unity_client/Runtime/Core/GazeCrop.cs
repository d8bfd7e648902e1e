// The gaze crop's geometry (docs/protocol.md 3.1, protocol v1.1), computed exactly as the server does
// (server/protocol.py gaze_crop_rect; pinned by tests/vectors/gaze_crop_rect.json), so an app can draw
// the square that was classified. Plain C#, no UnityEngine.
using System;

namespace VrRecognition.Core
{
    /// <summary>A square in a frame's own pixel grid: origin at the top-left of the upright image (after
    /// ROWS_BOTTOM_UP is applied), x to the right, y down.</summary>
    public struct CropRect
    {
        public int Left, Top, Side;

        public CropRect(int left, int top, int side) { Left = left; Top = top; Side = side; }

        public int Right { get { return Left + Side; } }
        public int Bottom { get { return Top + Side; } }

        /// <summary>The rectangle's lower edge measured from the image's bottom row, for bottom-left
        /// origins such as Unity's textures and GUI rects in viewport space: height - Top - Side.</summary>
        public int TopFromBottom(int height) { return height - Top - Side; }

        public override string ToString() { return "[" + Left + ", " + Top + ", " + Side + "]"; }
    }

    public static class GazeCrop
    {
        /// <summary>The square the server classifies for a frame of width x height with HAS_GAZE at
        /// (u, v) and gaze_crop scale s:
        /// side = max(1, floor(s * min(w, h) + 0.5)),
        /// left = clamp(floor(u * w - side / 2 + 0.5), 0, w - side),
        /// top = clamp(floor(v * h - side / 2 + 0.5), 0, h - side).
        /// Pass the frame's declared size and the gaze and scale as sent (a float gaze widens exactly).</summary>
        public static CropRect Rect(int width, int height, double u, double v, double scale)
        {
            if (width < 1 || height < 1) throw new ArgumentOutOfRangeException("width", "the frame needs a size of at least 1 x 1");
            if (!(scale > 0.0 && scale <= 1.0)) throw new ArgumentOutOfRangeException("scale", "the gaze crop scale must lie in (0, 1]");
            if (!(u >= 0.0 && u <= 1.0) || !(v >= 0.0 && v <= 1.0)) throw new ArgumentOutOfRangeException("u", "the gaze must lie in [0, 1]");
            int side = Math.Max(1, (int)Math.Floor(scale * Math.Min(width, height) + 0.5));
            int left = Clamp(Math.Floor(u * width - side / 2.0 + 0.5), 0, width - side);
            int top = Clamp(Math.Floor(v * height - side / 2.0 + 0.5), 0, height - side);
            return new CropRect(left, top, side);
        }

        static int Clamp(double value, int lo, int hi)
        {
            return value < lo ? lo : value > hi ? hi : (int)value;
        }
    }
}
