// Marks an object with the class name the recorder writes when the gaze ray hits it (any collider on
// this object or its children).
using UnityEngine;

namespace VrRecognition.Unity
{
    [AddComponentMenu("VR Recognition/Recognition Label")]
    public sealed class RecognitionLabel : MonoBehaviour
    {
        [Tooltip("One of the recorder's classes, e.g. 'teapot'.")]
        public string label = "";
    }
}
